//! Autoscaler settings: the cluster defaults (Knative's `config-autoscaler` ConfigMap) and the
//! per-revision `autoscaling.knative.dev/*` annotations, validated and resolved the way Knative's
//! webhook and KPA reconciler do (`annotation_validation.go`, `ResolveMetricTarget`, `MakeDecider`,
//! `MakeMetric`, `GetInitialScale`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde_json::{Map, Value};

use super::kpa::DeciderSpec;

/// Prefix shared by all autoscaling annotations.
pub const ANNOTATION_PREFIX: &str = "autoscaling.knative.dev/";
/// The only autoscaler class skiff runs.
pub const KPA_CLASS: &str = "kpa.autoscaling.knative.dev";
/// Kubernetes' HPA class, which Knative supports and skiff does not.
pub const HPA_CLASS: &str = "hpa.autoscaling.knative.dev";
/// Shortest allowed stable window.
pub const WINDOW_MIN: Duration = Duration::from_secs(6);
/// Longest allowed stable window (also the bound for delays and retention).
pub const WINDOW_MAX: Duration = Duration::from_secs(3600);
/// Smallest allowed per-pod target.
pub const TARGET_MIN: f64 = 0.01;
/// Metric bucket granularity.
pub const BUCKET_SIZE: Duration = Duration::from_secs(1);
const PANIC_WINDOW_PERCENTAGE_MIN: f64 = 1.0;
const PANIC_WINDOW_PERCENTAGE_MAX: f64 = 100.0;
const PANIC_THRESHOLD_PERCENTAGE_MIN: f64 = 110.0;
const PANIC_THRESHOLD_PERCENTAGE_MAX: f64 = 1000.0;
/// Knative's `TargetUtilization` for non-concurrency metrics; not settable in its ConfigMap.
const RPS_TARGET_UTILIZATION: f64 = 0.7;
/// Path under which revision annotations are reported.
const ANNOTATIONS_PATH: &str = "metadata.annotations";

// Annotation keys in Knative's priority order: canonical kebab-case first, then legacy aliases.
const CLASS: &[&str] = &["autoscaling.knative.dev/class"];
const METRIC: &[&str] = &["autoscaling.knative.dev/metric"];
const TARGET: &[&str] = &["autoscaling.knative.dev/target"];
const TARGET_UTILIZATION: &[&str] = &[
    "autoscaling.knative.dev/target-utilization-percentage",
    "autoscaling.knative.dev/targetUtilizationPercentage",
];
const TARGET_BURST_CAPACITY: &[&str] =
    &["autoscaling.knative.dev/target-burst-capacity", "autoscaling.knative.dev/targetBurstCapacity"];
const WINDOW: &[&str] = &["autoscaling.knative.dev/window"];
const PANIC_WINDOW: &[&str] =
    &["autoscaling.knative.dev/panic-window-percentage", "autoscaling.knative.dev/panicWindowPercentage"];
const PANIC_THRESHOLD: &[&str] = &[
    "autoscaling.knative.dev/panic-threshold-percentage",
    "autoscaling.knative.dev/panicThresholdPercentage",
];
const MIN_SCALE: &[&str] = &["autoscaling.knative.dev/min-scale", "autoscaling.knative.dev/minScale"];
const MAX_SCALE: &[&str] = &["autoscaling.knative.dev/max-scale", "autoscaling.knative.dev/maxScale"];
const INITIAL_SCALE: &[&str] =
    &["autoscaling.knative.dev/initial-scale", "autoscaling.knative.dev/initialScale"];
const ACTIVATION_SCALE: &[&str] = &["autoscaling.knative.dev/activation-scale"];
const SCALE_DOWN_DELAY: &[&str] =
    &["autoscaling.knative.dev/scale-down-delay", "autoscaling.knative.dev/scaleDownDelay"];
const RETENTION: &[&str] = &[
    "autoscaling.knative.dev/scale-to-zero-pod-retention-period",
    "autoscaling.knative.dev/scaleToZeroPodRetentionPeriod",
];
const ALGORITHM: &[&str] = &[
    "autoscaling.knative.dev/metric-aggregation-algorithm",
    "autoscaling.knative.dev/metricAggregationAlgorithm",
];
const ALL_KEYS: &[&[&str]] = &[
    CLASS,
    METRIC,
    TARGET,
    TARGET_UTILIZATION,
    TARGET_BURST_CAPACITY,
    WINDOW,
    PANIC_WINDOW,
    PANIC_THRESHOLD,
    MIN_SCALE,
    MAX_SCALE,
    INITIAL_SCALE,
    ACTIVATION_SCALE,
    SCALE_DOWN_DELAY,
    RETENTION,
    ALGORITHM,
];

/// Cluster-wide autoscaler defaults, keyed as in Knative's `config-autoscaler` ConfigMap.
#[derive(Debug, Clone, PartialEq)]
pub struct AutoscalerConfig {
    /// `enable-scale-to-zero`.
    pub enable_scale_to_zero: bool,
    /// `container-concurrency-target-percentage`; values in (0, 1] are read as fractions, as in Knative.
    pub container_concurrency_target_percentage: f64,
    /// `container-concurrency-target-default`: per-pod capacity when containerConcurrency is 0.
    pub container_concurrency_target_default: f64,
    /// `requests-per-second-target-default`.
    pub requests_per_second_target_default: f64,
    /// `target-burst-capacity`; -1 keeps the activator in the path, 0 never puts it there for bursts.
    pub target_burst_capacity: f64,
    /// `stable-window`.
    pub stable_window: Duration,
    /// `panic-window-percentage`: the panic window as a percentage of the stable window.
    pub panic_window_percentage: f64,
    /// `panic-threshold-percentage`: panic when the panic-window demand reaches this share of capacity.
    pub panic_threshold_percentage: f64,
    /// `max-scale-up-rate`.
    pub max_scale_up_rate: f64,
    /// `max-scale-down-rate`.
    pub max_scale_down_rate: f64,
    /// `scale-to-zero-grace-period`: upper bound on keeping the last pod once inactive.
    pub scale_to_zero_grace_period: Duration,
    /// `scale-to-zero-pod-retention-period`: lower bound on keeping the last pod once inactive.
    pub scale_to_zero_pod_retention_period: Duration,
    /// `initial-scale`.
    pub initial_scale: u32,
    /// `allow-zero-initial-scale` (Knative defaults to false; skiff to true).
    pub allow_zero_initial_scale: bool,
    /// `min-scale`.
    pub min_scale: u32,
    /// `max-scale` (0 = unbounded).
    pub max_scale: u32,
    /// `max-scale-limit` (0 = no limit on revisions' max-scale).
    pub max_scale_limit: u32,
    /// `scale-down-delay`.
    pub scale_down_delay: Duration,
    /// `tick-interval` (skiff extension): how often the decider runs.
    pub tick_interval: Duration,
}

impl Default for AutoscalerConfig {
    fn default() -> Self {
        AutoscalerConfig {
            enable_scale_to_zero: true,
            container_concurrency_target_percentage: 70.0,
            container_concurrency_target_default: 100.0,
            requests_per_second_target_default: 200.0,
            target_burst_capacity: 211.0,
            stable_window: Duration::from_secs(60),
            panic_window_percentage: 10.0,
            panic_threshold_percentage: 200.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            scale_to_zero_grace_period: Duration::from_secs(30),
            scale_to_zero_pod_retention_period: Duration::ZERO,
            initial_scale: 1,
            allow_zero_initial_scale: true,
            min_scale: 0,
            max_scale: 0,
            max_scale_limit: 0,
            scale_down_delay: Duration::ZERO,
            tick_interval: Duration::from_secs(2),
        }
    }
}

impl AutoscalerConfig {
    /// Set one key as Knative spells it ("stable-window", "60s"); error names key and value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let bad = |why: String| format!("{key}: invalid value {value:?}: {why}");
        let v = value.trim();
        match key {
            "enable-scale-to-zero" => self.enable_scale_to_zero = parse_bool(v).map_err(bad)?,
            "allow-zero-initial-scale" => self.allow_zero_initial_scale = parse_bool(v).map_err(bad)?,
            "container-concurrency-target-percentage" => {
                self.container_concurrency_target_percentage = parse_float(v).map_err(bad)?
            }
            "container-concurrency-target-default" => {
                self.container_concurrency_target_default = parse_float(v).map_err(bad)?
            }
            "requests-per-second-target-default" => {
                self.requests_per_second_target_default = parse_float(v).map_err(bad)?
            }
            "target-burst-capacity" => self.target_burst_capacity = parse_float(v).map_err(bad)?,
            "panic-window-percentage" => self.panic_window_percentage = parse_float(v).map_err(bad)?,
            "panic-threshold-percentage" => self.panic_threshold_percentage = parse_float(v).map_err(bad)?,
            "max-scale-up-rate" => self.max_scale_up_rate = parse_float(v).map_err(bad)?,
            "max-scale-down-rate" => self.max_scale_down_rate = parse_float(v).map_err(bad)?,
            "stable-window" => self.stable_window = parse_duration(v).map_err(bad)?,
            "scale-to-zero-grace-period" => {
                self.scale_to_zero_grace_period = parse_duration(v).map_err(bad)?
            }
            "scale-to-zero-pod-retention-period" => {
                self.scale_to_zero_pod_retention_period = parse_duration(v).map_err(bad)?
            }
            "scale-down-delay" => self.scale_down_delay = parse_duration(v).map_err(bad)?,
            "tick-interval" => self.tick_interval = parse_duration(v).map_err(bad)?,
            "initial-scale" => self.initial_scale = parse_count(v).map_err(bad)?,
            "min-scale" => self.min_scale = parse_count(v).map_err(bad)?,
            "max-scale" => self.max_scale = parse_count(v).map_err(bad)?,
            "max-scale-limit" => self.max_scale_limit = parse_count(v).map_err(bad)?,
            "pod-autoscaler-class" => {
                if v != KPA_CLASS {
                    return Err(bad(format!("skiff runs only the KPA ({KPA_CLASS})")));
                }
            }
            _ => return Err(format!("{key}: unknown autoscaler setting (value {value:?})")),
        }
        Ok(())
    }

    /// Whole-config validation, as Knative's `config-autoscaler` validation does; returns the first problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.scale_to_zero_grace_period.is_zero() {
            return Err("scale-to-zero-grace-period must be positive, was: 0s".into());
        }
        if !whole_seconds(self.scale_down_delay) {
            return Err(format!(
                "scale-down-delay = {:?}, must be specified with at most second precision",
                self.scale_down_delay
            ));
        }
        let tbc = self.target_burst_capacity;
        if !tbc.is_finite() || (tbc < 0.0 && tbc != -1.0) {
            return Err(format!(
                "target-burst-capacity must be either non-negative or -1 (for unlimited), was: {tbc}"
            ));
        }
        let fraction = self.container_concurrency_target_fraction();
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(format!(
                "container-concurrency-target-percentage = {} is outside of valid range of (0, 100]",
                self.container_concurrency_target_percentage
            ));
        }
        let target = fraction * self.container_concurrency_target_default;
        if target.is_nan() || target < TARGET_MIN {
            return Err(format!(
                "container-concurrency-target-percentage and container-concurrency-target-default yield target \
                 concurrency of {target}, can't be less than {TARGET_MIN}"
            ));
        }
        if self.requests_per_second_target_default.is_nan()
            || self.requests_per_second_target_default < TARGET_MIN
        {
            return Err(format!(
                "requests-per-second-target-default must be at least {TARGET_MIN}, was: {}",
                self.requests_per_second_target_default
            ));
        }
        if self.max_scale_up_rate.is_nan() || self.max_scale_up_rate <= 1.0 {
            return Err(format!("max-scale-up-rate = {}, must be greater than 1.0", self.max_scale_up_rate));
        }
        if self.max_scale_down_rate.is_nan() || self.max_scale_down_rate <= 1.0 {
            return Err(format!(
                "max-scale-down-rate = {}, must be greater than 1.0",
                self.max_scale_down_rate
            ));
        }
        if self.stable_window < WINDOW_MIN || self.stable_window > WINDOW_MAX {
            return Err(format!(
                "stable-window = {:?}, must be in [{WINDOW_MIN:?}; {WINDOW_MAX:?}] range",
                self.stable_window
            ));
        }
        if !whole_seconds(self.stable_window) {
            return Err(format!(
                "stable-window = {:?}, must be specified with at most second precision",
                self.stable_window
            ));
        }
        let pwp = self.panic_window_percentage;
        if !(PANIC_WINDOW_PERCENTAGE_MIN..=PANIC_WINDOW_PERCENTAGE_MAX).contains(&pwp) {
            return Err(format!(
                "panic-window-percentage = {pwp}, must be in [{PANIC_WINDOW_PERCENTAGE_MIN}, \
                 {PANIC_WINDOW_PERCENTAGE_MAX}] interval"
            ));
        }
        if !(self.panic_threshold_percentage.is_finite() && self.panic_threshold_percentage > 0.0) {
            return Err(format!(
                "panic-threshold-percentage = {}, must be positive",
                self.panic_threshold_percentage
            ));
        }
        if self.initial_scale == 0 && !self.allow_zero_initial_scale {
            return Err("initial-scale = 0, must be at least 1 when allow-zero-initial-scale is false".into());
        }
        let min_max_scale = u32::from(self.max_scale_limit > 0);
        if self.max_scale < min_max_scale
            || (self.max_scale_limit > 0 && self.max_scale > self.max_scale_limit)
        {
            return Err(format!(
                "max-scale = {}, must be in [{min_max_scale}, max-scale-limit({})] range",
                self.max_scale, self.max_scale_limit
            ));
        }
        if self.max_scale > 0 && self.min_scale > self.max_scale {
            return Err(format!(
                "min-scale ({}) must be between 0 and max-scale ({})",
                self.min_scale, self.max_scale
            ));
        }
        if self.tick_interval < Duration::from_secs(1) || !whole_seconds(self.tick_interval) {
            return Err(format!(
                "tick-interval = {:?}, must be a whole number of seconds, at least 1s",
                self.tick_interval
            ));
        }
        Ok(())
    }

    /// The concurrency target utilisation as a fraction (Knative accepts 70 or 0.7 alike).
    pub fn container_concurrency_target_fraction(&self) -> f64 {
        let p = self.container_concurrency_target_percentage;
        if p > 1.0 { p / 100.0 } else { p }
    }
}

/// Parse a Go-style duration ("60s", "1m30s", "500ms", "1.5h", "0"); negative durations are rejected.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    const UNITS: &[(&str, u128)] = &[
        ("ns", 1),
        ("us", 1_000),
        ("\u{b5}s", 1_000),
        ("\u{3bc}s", 1_000),
        ("ms", 1_000_000),
        ("s", 1_000_000_000),
        ("m", 60_000_000_000),
        ("h", 3_600_000_000_000),
    ];
    let mut rest = s;
    let negative = match rest.as_bytes().first() {
        Some(b'-') => {
            rest = &rest[1..];
            true
        }
        Some(b'+') => {
            rest = &rest[1..];
            false
        }
        _ => false,
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format!("invalid duration {s:?}"));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("invalid duration {s:?}"));
        }
        let unit_len = rest.find(|c: char| c == '.' || c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(if unit.is_empty() {
                format!("missing unit in duration {s:?}")
            } else {
                format!("unknown unit {unit:?} in duration {s:?}")
            });
        };
        let too_big = || format!("duration {s:?} is out of range");
        let int: u128 = if int_part.is_empty() { 0 } else { int_part.parse().map_err(|_| too_big())? };
        let mut frac_ns: u128 = 0;
        let mut denom: u128 = 1;
        // Nanosecond precision needs at most 18 fractional digits for any unit up to hours.
        for d in frac_part.bytes().take(18) {
            frac_ns = frac_ns * 10 + u128::from(d - b'0');
            denom *= 10;
        }
        let part = int
            .checked_mul(scale)
            .and_then(|p| p.checked_add(frac_ns * scale / denom))
            .ok_or_else(too_big)?;
        total = total.checked_add(part).filter(|t| *t <= u128::from(u64::MAX)).ok_or_else(too_big)?;
    }
    if negative && total > 0 {
        return Err(format!("negative duration {s:?} is not allowed"));
    }
    u64::try_from(total).map(Duration::from_nanos).map_err(|_| format!("duration {s:?} is out of range"))
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("expected a boolean".into()),
    }
}

fn parse_float(v: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(f) if f.is_finite() => Ok(f),
        _ => Err("expected a number".into()),
    }
}

fn parse_count(v: &str) -> Result<u32, String> {
    match v.parse::<i64>() {
        Ok(i) if i < 0 => Err("must be at least 0".into()),
        Ok(i) => u32::try_from(i).ok().filter(|n| *n <= i32::MAX as u32).ok_or_else(|| "too large".into()),
        Err(_) => Err("expected an integer".into()),
    }
}

fn whole_seconds(d: Duration) -> bool {
    d.subsec_nanos() == 0
}

/// The metric a revision scales on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Metric {
    /// In-flight requests per pod (Knative's default).
    #[default]
    Concurrency,
    /// Requests per second per pod.
    Rps,
}

impl Metric {
    /// The annotation spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Concurrency => "concurrency",
            Metric::Rps => "rps",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one revision's annotations (merged with the cluster defaults) say.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionScaling {
    pub metric: Metric,
    /// The decider's parameters; set `decider.reachable` from the revision's routing.
    pub decider: DeciderSpec,
    /// Not applied while the revision is unreachable, as in Knative.
    pub min_scale: u32,
    /// 0 = unbounded.
    pub max_scale: u32,
    /// Pods for a new revision until first reached (Knative's `GetInitialScale`).
    pub initial_scale: u32,
    /// Pods to start with when activated from zero (at least 1).
    pub activation_scale: u32,
    pub scale_to_zero_grace_period: Duration,
    pub scale_to_zero_pod_retention_period: Duration,
    pub enable_scale_to_zero: bool,
}

/// A validation problem at one field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Like "metadata.annotations.autoscaling.knative.dev/min-scale".
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for FieldError {}

impl RevisionScaling {
    /// Resolve a revision's scaling from `annotations` (its metadata.annotations, if any) and
    /// `container_concurrency` (spec.containerConcurrency, 0 = unlimited) over the cluster `config`.
    pub fn from_annotations(
        annotations: Option<&Map<String, Value>>,
        container_concurrency: u32,
        config: &AutoscalerConfig,
    ) -> Result<RevisionScaling, Vec<FieldError>> {
        let empty = Map::new();
        let annotations = annotations.unwrap_or(&empty);
        let errors = validate_annotations(annotations, ANNOTATIONS_PATH, config);
        if !errors.is_empty() {
            return Err(errors);
        }
        let (anns, _) = autoscaling_strings(annotations, ANNOTATIONS_PATH);
        let get = |keys: &[&'static str]| lookup(&anns, keys).map(|(_, v)| v);
        let float = |keys: &[&'static str]| get(keys).and_then(|v| v.trim().parse::<f64>().ok());
        let count = |keys: &[&'static str]| get(keys).and_then(|v| v.trim().parse::<u32>().ok());
        let duration = |keys: &[&'static str]| get(keys).and_then(|v| parse_duration(v.trim()).ok());

        let metric = match get(METRIC) {
            Some("rps") => Metric::Rps,
            _ => Metric::Concurrency,
        };

        // Knative's ResolveMetricTarget.
        let cc = f64::from(container_concurrency);
        let (mut total, mut utilization) = match metric {
            Metric::Rps => (config.requests_per_second_target_default, RPS_TARGET_UTILIZATION),
            Metric::Concurrency => (
                if container_concurrency > 0 { cc } else { config.container_concurrency_target_default },
                config.container_concurrency_target_fraction(),
            ),
        };
        if let Some(target) = float(TARGET) {
            total = target;
            if metric == Metric::Concurrency && container_concurrency > 0 {
                total = target.min(cc);
            }
        }
        if let Some(percent) = float(TARGET_UTILIZATION) {
            utilization = percent / 100.0;
        }
        let target_value = (total * utilization).max(TARGET_MIN);

        // Knative's MakeDecider and MakeMetric.
        let stable_window = duration(WINDOW).unwrap_or(config.stable_window);
        let panic_window_percentage = float(PANIC_WINDOW).unwrap_or(config.panic_window_percentage);
        let panic_window = panic_window_for(stable_window, panic_window_percentage);
        let panic_threshold = float(PANIC_THRESHOLD).unwrap_or(config.panic_threshold_percentage) / 100.0;
        let activation_scale = count(ACTIVATION_SCALE).unwrap_or(1).max(1);
        let decider = DeciderSpec {
            target_value,
            total_value: total,
            target_burst_capacity: float(TARGET_BURST_CAPACITY).unwrap_or(config.target_burst_capacity),
            panic_threshold,
            max_scale_up_rate: config.max_scale_up_rate,
            max_scale_down_rate: config.max_scale_down_rate,
            stable_window,
            panic_window,
            activation_scale,
            scale_down_delay: duration(SCALE_DOWN_DELAY).unwrap_or(config.scale_down_delay),
            reachable: true,
            tick_interval: config.tick_interval,
        };

        // Knative's GetInitialScale: an annotated 0 counts only when zero initial scale is allowed.
        let initial_scale = match count(INITIAL_SCALE) {
            Some(n) if n > 0 || config.allow_zero_initial_scale => n,
            _ => config.initial_scale,
        };

        Ok(RevisionScaling {
            metric,
            decider,
            min_scale: count(MIN_SCALE).unwrap_or(config.min_scale),
            max_scale: count(MAX_SCALE).unwrap_or(config.max_scale),
            initial_scale,
            activation_scale,
            scale_to_zero_grace_period: config.scale_to_zero_grace_period,
            scale_to_zero_pod_retention_period: duration(RETENTION)
                .unwrap_or(config.scale_to_zero_pod_retention_period),
            enable_scale_to_zero: config.enable_scale_to_zero,
        })
    }
}

/// Knative's panic window: stable × percentage / 100, rounded to the second, at least one bucket.
pub fn panic_window_for(stable_window: Duration, percentage: f64) -> Duration {
    let secs = (stable_window.as_secs_f64() * percentage / 100.0).round();
    let secs = if secs.is_finite() && secs > 0.0 { secs.min(WINDOW_MAX.as_secs_f64()) } else { 0.0 };
    Duration::from_secs(secs as u64).max(BUCKET_SIZE)
}

/// Admission-time validation of `autoscaling.knative.dev/*` annotations, as Knative's webhook does.
/// Paths are `path_prefix` + "." + the annotation key.
pub fn validate_annotations(
    annotations: &Map<String, Value>,
    path_prefix: &str,
    config: &AutoscalerConfig,
) -> Vec<FieldError> {
    let (anns, mut errs) = autoscaling_strings(annotations, path_prefix);
    let path =
        |key: &str| if path_prefix.is_empty() { key.to_string() } else { format!("{path_prefix}.{key}") };
    let mut err = |key: &str, message: String| errs.push(FieldError { path: path(key), message });

    for keys in ALL_KEYS {
        let present: Vec<&str> = keys.iter().copied().filter(|k| anns.contains_key(*k)).collect();
        if present.len() > 1 {
            err(present[1], format!("duplicates {}; set only one of them", present[0]));
        }
    }

    if let Some((k, v)) = lookup(&anns, CLASS) {
        if v == HPA_CLASS {
            err(k, format!("{v:?} is not supported: skiff runs only the KPA ({KPA_CLASS})"));
        } else if v != KPA_CLASS {
            err(k, format!("invalid value {v:?}: skiff runs only the KPA ({KPA_CLASS})"));
        }
    }

    let min = scale_value(&anns, MIN_SCALE, &mut err);
    let max = scale_value(&anns, MAX_SCALE, &mut err);
    if let (Some((_, min)), Some((max_key, max))) = (min, max)
        && max != 0
        && max < min
    {
        err(max_key, format!("max-scale={max} is less than min-scale={min}"));
    }
    if let Some((max_key, max)) = max
        && config.max_scale_limit > 0
    {
        let limit = config.max_scale_limit;
        if max > i64::from(limit) {
            err(max_key, format!("expected 1 <= {max} <= {limit} (max-scale-limit)"));
        } else if max == 0 {
            err(max_key, format!("max-scale=0 (unlimited), must be less than {limit} (max-scale-limit)"));
        }
    }

    let mut float_in = |keys: &[&'static str], lo: f64, hi: f64| {
        if let Some((k, v)) = lookup(&anns, keys) {
            match v.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && (lo..=hi).contains(&f) => {}
                Ok(f) if f.is_finite() => err(k, format!("expected {lo} <= {v} <= {hi}")),
                _ => err(k, format!("invalid value {v:?}: expected a number")),
            }
        }
    };
    float_in(PANIC_WINDOW, PANIC_WINDOW_PERCENTAGE_MIN, PANIC_WINDOW_PERCENTAGE_MAX);
    float_in(PANIC_THRESHOLD, PANIC_THRESHOLD_PERCENTAGE_MIN, PANIC_THRESHOLD_PERCENTAGE_MAX);
    float_in(TARGET_UTILIZATION, 1.0, 100.0);
    if let Some((k, v)) = lookup(&anns, TARGET) {
        match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f >= TARGET_MIN => {}
            _ => err(k, format!("target {v} should be at least {TARGET_MIN}")),
        }
    }
    if let Some((k, v)) = lookup(&anns, TARGET_BURST_CAPACITY) {
        match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && (f >= 0.0 || f == -1.0) => {}
            _ => {
                err(k, format!("invalid value {v:?}: must be non-negative, or -1 (activator always in path)"))
            }
        }
    }

    let mut duration_in = |keys: &[&'static str], lo: Duration, whole: bool| {
        if let Some((k, v)) = lookup(&anns, keys) {
            match parse_duration(v.trim()) {
                Err(e) => err(k, format!("invalid value {v:?}: {e}")),
                Ok(d) if d < lo || d > WINDOW_MAX => {
                    err(k, format!("expected {lo:?} <= {v} <= {WINDOW_MAX:?}"))
                }
                Ok(d) if whole && !whole_seconds(d) => {
                    err(k, format!("{v}: must be specified with at most second precision"))
                }
                Ok(_) => {}
            }
        }
    };
    duration_in(WINDOW, WINDOW_MIN, true);
    duration_in(RETENTION, Duration::ZERO, false);
    duration_in(SCALE_DOWN_DELAY, Duration::ZERO, true);

    if let Some((k, v)) = lookup(&anns, METRIC)
        && v != "concurrency"
        && v != "rps"
    {
        err(k, format!("invalid value {v:?}: the KPA scales on \"concurrency\" or \"rps\""));
    }
    if let Some((k, v)) = lookup(&anns, ALGORITHM)
        && v != "linear"
    {
        err(k, format!("invalid value {v:?}: skiff supports only \"linear\" metric aggregation"));
    }
    if let Some((k, v)) = lookup(&anns, INITIAL_SCALE) {
        match v.trim().parse::<i64>() {
            Ok(0) if !config.allow_zero_initial_scale => {
                err(k, "invalid value \"0\": initial-scale 0 needs allow-zero-initial-scale".into())
            }
            Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => {}
            _ => err(k, format!("invalid value {v:?}: expected an integer >= 0")),
        }
    }
    if let Some((k, v)) = lookup(&anns, ACTIVATION_SCALE) {
        match v.trim().parse::<i64>() {
            Ok(n) if (1..=i64::from(i32::MAX)).contains(&n) => {}
            _ => err(k, format!("invalid value {v:?}: expected an integer >= 1")),
        }
    }
    errs
}

/// The autoscaling annotations as strings, plus errors for values that are not strings.
/// Numbers and booleans are taken by their JSON text.
fn autoscaling_strings(
    annotations: &Map<String, Value>,
    path_prefix: &str,
) -> (BTreeMap<String, String>, Vec<FieldError>) {
    let mut out = BTreeMap::new();
    let mut errs = Vec::new();
    for (k, v) in annotations.iter().filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX)) {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                let path = if path_prefix.is_empty() { k.clone() } else { format!("{path_prefix}.{k}") };
                errs.push(FieldError { path, message: "annotation values must be strings".into() });
                continue;
            }
        };
        out.insert(k.clone(), text);
    }
    (out, errs)
}

/// First key present in priority order, with its value.
fn lookup<'a>(anns: &'a BTreeMap<String, String>, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
    keys.iter().find_map(|k| anns.get(*k).map(|v| (*k, v.as_str())))
}

/// Parse a min/max-scale annotation (an int32 ≥ 0), reporting errors.
fn scale_value(
    anns: &BTreeMap<String, String>,
    keys: &[&'static str],
    err: &mut impl FnMut(&str, String),
) -> Option<(&'static str, i64)> {
    let (k, v) = lookup(anns, keys)?;
    match v.trim().parse::<i64>() {
        Ok(n) if (0..=i64::from(i32::MAX)).contains(&n) => Some((k, n)),
        Ok(_) => {
            err(k, format!("expected 0 <= {v} <= {}", i32::MAX));
            Some((k, 0))
        }
        Err(_) => {
            err(k, format!("invalid value {v:?}: expected an integer"));
            Some((k, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn anns(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn parse_duration_table() {
        let ok: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("60s", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("500ms", Duration::from_millis(500)),
            ("1h", Duration::from_secs(3600)),
            ("1.5h", Duration::from_secs(5400)),
            (".5s", Duration::from_millis(500)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("3\u{b5}s", Duration::from_micros(3)),
            ("+2s", Duration::from_secs(2)),
            ("-0s", Duration::ZERO),
        ];
        for (input, want) in ok {
            assert_eq!(parse_duration(input).as_ref(), Ok(want), "{input}");
        }
        assert!(
            parse_duration("0.123456789012345678901234567890h").is_ok(),
            "long fractions must not overflow"
        );
        for bad in ["", "s", "10", "1x", "-1s", "1..5s", ".s", "1e3s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn defaults_are_knatives_and_valid() {
        let c = AutoscalerConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.allow_zero_initial_scale);
        assert_eq!(c.target_burst_capacity, 211.0);
        assert_eq!(c.container_concurrency_target_fraction(), 0.7);
    }

    #[test]
    fn set_table() {
        type Check = fn(&AutoscalerConfig) -> bool;
        let cases: &[(&str, &str, bool, Check)] = &[
            ("stable-window", "2m", true, |c| c.stable_window == Duration::from_secs(120)),
            ("enable-scale-to-zero", "false", true, |c| !c.enable_scale_to_zero),
            ("container-concurrency-target-percentage", "0.5", true, |c| {
                c.container_concurrency_target_fraction() == 0.5
            }),
            ("container-concurrency-target-percentage", "80", true, |c| {
                c.container_concurrency_target_fraction() == 0.8
            }),
            ("max-scale", "10", true, |c| c.max_scale == 10),
            ("tick-interval", "1s", true, |c| c.tick_interval == Duration::from_secs(1)),
            ("pod-autoscaler-class", KPA_CLASS, true, |_| true),
            ("pod-autoscaler-class", HPA_CLASS, false, |_| true),
            ("max-scale", "-1", false, |c| c.max_scale == 0),
            ("stable-window", "sixty", false, |c| c.stable_window == Duration::from_secs(60)),
            ("enable-scale-to-zero", "yes", false, |c| c.enable_scale_to_zero),
            ("max-scale-up-rate", "NaN", false, |_| true),
            ("no-such-key", "1", false, |_| true),
        ];
        for (key, value, ok, check) in cases {
            let mut c = AutoscalerConfig::default();
            let res = c.set(key, value);
            assert_eq!(res.is_ok(), *ok, "{key}={value}: {res:?}");
            if let Err(e) = &res {
                assert!(e.contains(key) && e.contains(value), "error should name key and value: {e}");
            }
            assert!(check(&c), "{key}={value}");
        }
    }

    #[test]
    fn validate_table() {
        type Edit = fn(&mut AutoscalerConfig);
        let cases: &[(&str, Edit, Option<&str>)] = &[
            ("defaults", |_| {}, None),
            (
                "zero grace",
                |c| c.scale_to_zero_grace_period = Duration::ZERO,
                Some("scale-to-zero-grace-period"),
            ),
            (
                "sub-second delay",
                |c| c.scale_down_delay = Duration::from_millis(1500),
                Some("scale-down-delay"),
            ),
            ("tbc -2", |c| c.target_burst_capacity = -2.0, Some("target-burst-capacity")),
            ("tbc -1", |c| c.target_burst_capacity = -1.0, None),
            ("pct 0", |c| c.container_concurrency_target_percentage = 0.0, Some("container-concurrency")),
            ("pct 101", |c| c.container_concurrency_target_percentage = 101.0, Some("container-concurrency")),
            ("tiny target", |c| c.container_concurrency_target_default = 0.001, Some("yield target")),
            ("rps", |c| c.requests_per_second_target_default = 0.0, Some("requests-per-second")),
            ("up rate", |c| c.max_scale_up_rate = 1.0, Some("max-scale-up-rate")),
            ("down rate", |c| c.max_scale_down_rate = 0.5, Some("max-scale-down-rate")),
            ("window 5s", |c| c.stable_window = Duration::from_secs(5), Some("stable-window")),
            ("window 2h", |c| c.stable_window = Duration::from_secs(7200), Some("stable-window")),
            ("window 6.5s", |c| c.stable_window = Duration::from_millis(6500), Some("second precision")),
            ("panic window 0.5", |c| c.panic_window_percentage = 0.5, Some("panic-window-percentage")),
            (
                "initial 0 denied",
                |c| {
                    c.allow_zero_initial_scale = false;
                    c.initial_scale = 0;
                },
                Some("initial-scale"),
            ),
            ("initial 0 allowed", |c| c.initial_scale = 0, None),
            ("limit without max", |c| c.max_scale_limit = 5, Some("max-scale")),
            (
                "max over limit",
                |c| {
                    c.max_scale_limit = 5;
                    c.max_scale = 6;
                },
                Some("max-scale"),
            ),
            (
                "max within limit",
                |c| {
                    c.max_scale_limit = 5;
                    c.max_scale = 5;
                },
                None,
            ),
            (
                "min over max",
                |c| {
                    c.max_scale = 2;
                    c.min_scale = 3;
                },
                Some("min-scale"),
            ),
            ("tick 500ms", |c| c.tick_interval = Duration::from_millis(500), Some("tick-interval")),
        ];
        for (name, edit, want) in cases {
            let mut c = AutoscalerConfig::default();
            edit(&mut c);
            match (c.validate(), want) {
                (Ok(()), None) => {}
                (Err(e), Some(w)) => assert!(e.contains(w), "{name}: {e}"),
                (got, _) => panic!("{name}: got {got:?}, want error containing {want:?}"),
            }
        }
    }

    #[test]
    fn resolve_targets_table() {
        // (annotations, containerConcurrency, metric, target_value, total_value)
        let cases: &[(Value, u32, Metric, f64, f64)] = &[
            (json!({}), 0, Metric::Concurrency, 70.0, 100.0),
            (json!({}), 10, Metric::Concurrency, 7.0, 10.0),
            (json!({"autoscaling.knative.dev/target": "50"}), 0, Metric::Concurrency, 35.0, 50.0),
            (json!({"autoscaling.knative.dev/target": "50"}), 10, Metric::Concurrency, 7.0, 10.0),
            (json!({"autoscaling.knative.dev/target": "5"}), 10, Metric::Concurrency, 3.5, 5.0),
            (
                json!({"autoscaling.knative.dev/target": "10",
                       "autoscaling.knative.dev/target-utilization-percentage": "50"}),
                0,
                Metric::Concurrency,
                5.0,
                10.0,
            ),
            (
                json!({"autoscaling.knative.dev/targetUtilizationPercentage": "100"}),
                0,
                Metric::Concurrency,
                100.0,
                100.0,
            ),
            (json!({"autoscaling.knative.dev/target": "0.01"}), 0, Metric::Concurrency, 0.01, 0.01),
            (json!({"autoscaling.knative.dev/metric": "rps"}), 0, Metric::Rps, 140.0, 200.0),
            (
                json!({"autoscaling.knative.dev/metric": "rps", "autoscaling.knative.dev/target": "30"}),
                5,
                Metric::Rps,
                21.0,
                30.0,
            ),
        ];
        let config = AutoscalerConfig::default();
        for (a, cc, metric, target, total) in cases {
            let m = anns(a.clone());
            let r = RevisionScaling::from_annotations(Some(&m), *cc, &config)
                .unwrap_or_else(|e| panic!("{a}: {e:?}"));
            assert_eq!(r.metric, *metric, "{a}");
            assert!((r.decider.target_value - target).abs() < 1e-9, "{a}: target {}", r.decider.target_value);
            assert!((r.decider.total_value - total).abs() < 1e-9, "{a}: total {}", r.decider.total_value);
        }
    }

    #[test]
    fn resolve_other_fields() {
        let config = AutoscalerConfig::default();
        let r = RevisionScaling::from_annotations(None, 0, &config).expect("defaults resolve");
        assert_eq!((r.min_scale, r.max_scale, r.initial_scale, r.activation_scale), (0, 0, 1, 1));
        assert_eq!(r.decider.stable_window, Duration::from_secs(60));
        assert_eq!(r.decider.panic_window, Duration::from_secs(6));
        assert_eq!(r.decider.panic_threshold, 2.0);
        assert_eq!(r.decider.target_burst_capacity, 211.0);
        assert!(r.decider.reachable && r.enable_scale_to_zero);

        let m = anns(json!({
            "autoscaling.knative.dev/minScale": "2",
            "autoscaling.knative.dev/max-scale": "9",
            "autoscaling.knative.dev/initialScale": "0",
            "autoscaling.knative.dev/activation-scale": "3",
            "autoscaling.knative.dev/window": "45s",
            "autoscaling.knative.dev/panicWindowPercentage": "7",
            "autoscaling.knative.dev/panic-threshold-percentage": "150",
            "autoscaling.knative.dev/targetBurstCapacity": "-1",
            "autoscaling.knative.dev/scaleDownDelay": "30s",
            "autoscaling.knative.dev/scale-to-zero-pod-retention-period": "1m",
            "autoscaling.knative.dev/class": KPA_CLASS,
            "unrelated.example.com/x": {"nested": true},
        }));
        let r = RevisionScaling::from_annotations(Some(&m), 0, &config).expect("valid annotations");
        assert_eq!((r.min_scale, r.max_scale, r.initial_scale, r.activation_scale), (2, 9, 0, 3));
        assert_eq!(r.decider.activation_scale, 3);
        assert_eq!(r.decider.stable_window, Duration::from_secs(45));
        // 45s × 7% = 3.15s, rounded to 3s.
        assert_eq!(r.decider.panic_window, Duration::from_secs(3));
        assert_eq!(r.decider.panic_threshold, 1.5);
        assert_eq!(r.decider.target_burst_capacity, -1.0);
        assert_eq!(r.decider.scale_down_delay, Duration::from_secs(30));
        assert_eq!(r.scale_to_zero_pod_retention_period, Duration::from_secs(60));

        // An annotated initial scale of 0 falls back to the config when zero is not allowed.
        let strict = AutoscalerConfig { allow_zero_initial_scale: false, initial_scale: 2, ..config };
        let m = anns(json!({"autoscaling.knative.dev/initial-scale": "3"}));
        let r = RevisionScaling::from_annotations(Some(&m), 0, &strict).expect("valid");
        assert_eq!(r.initial_scale, 3);
    }

    #[test]
    fn panic_window_rounding() {
        let cases =
            [(60, 10.0, 6), (60, 1.0, 1), (6, 1.0, 1), (10, 15.0, 2), (10, 14.0, 1), (3600, 100.0, 3600)];
        for (stable, pct, want) in cases {
            assert_eq!(
                panic_window_for(Duration::from_secs(stable), pct),
                Duration::from_secs(want),
                "{stable} {pct}"
            );
        }
    }

    #[test]
    fn validate_annotations_table() {
        // (annotations, config edit, expected error paths (suffix after prefix); empty = valid)
        type Edit = fn(&mut AutoscalerConfig);
        let none: Edit = |_| {};
        let cases: Vec<(Value, Edit, Vec<&str>)> = vec![
            (json!({}), none, vec![]),
            (json!({"autoscaling.knative.dev/class": KPA_CLASS}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/class": HPA_CLASS}),
                none,
                vec!["autoscaling.knative.dev/class"],
            ),
            (
                json!({"autoscaling.knative.dev/class": "foo.example.com"}),
                none,
                vec!["autoscaling.knative.dev/class"],
            ),
            (json!({"autoscaling.knative.dev/metric": "cpu"}), none, vec!["autoscaling.knative.dev/metric"]),
            (json!({"autoscaling.knative.dev/metric": "rps"}), none, vec![]),
            (json!({"autoscaling.knative.dev/target": "0"}), none, vec!["autoscaling.knative.dev/target"]),
            (json!({"autoscaling.knative.dev/target": "abc"}), none, vec!["autoscaling.knative.dev/target"]),
            (
                json!({"autoscaling.knative.dev/target-utilization-percentage": "101"}),
                none,
                vec!["autoscaling.knative.dev/target-utilization-percentage"],
            ),
            (
                json!({"autoscaling.knative.dev/targetBurstCapacity": "-2"}),
                none,
                vec!["autoscaling.knative.dev/targetBurstCapacity"],
            ),
            (json!({"autoscaling.knative.dev/target-burst-capacity": "-1"}), none, vec![]),
            (json!({"autoscaling.knative.dev/window": "5s"}), none, vec!["autoscaling.knative.dev/window"]),
            (json!({"autoscaling.knative.dev/window": "2h"}), none, vec!["autoscaling.knative.dev/window"]),
            (
                json!({"autoscaling.knative.dev/window": "6500ms"}),
                none,
                vec!["autoscaling.knative.dev/window"],
            ),
            (json!({"autoscaling.knative.dev/window": "1h"}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/panic-window-percentage": "0.5"}),
                none,
                vec!["autoscaling.knative.dev/panic-window-percentage"],
            ),
            (
                json!({"autoscaling.knative.dev/panicThresholdPercentage": "109"}),
                none,
                vec!["autoscaling.knative.dev/panicThresholdPercentage"],
            ),
            (json!({"autoscaling.knative.dev/panic-threshold-percentage": "1000"}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/min-scale": "-1"}),
                none,
                vec!["autoscaling.knative.dev/min-scale"],
            ),
            (
                json!({"autoscaling.knative.dev/minScale": "x"}),
                none,
                vec!["autoscaling.knative.dev/minScale"],
            ),
            (
                json!({"autoscaling.knative.dev/min-scale": "3", "autoscaling.knative.dev/max-scale": "2"}),
                none,
                vec!["autoscaling.knative.dev/max-scale"],
            ),
            (
                json!({"autoscaling.knative.dev/min-scale": "3", "autoscaling.knative.dev/max-scale": "0"}),
                none,
                vec![],
            ),
            (
                json!({"autoscaling.knative.dev/max-scale": "11"}),
                |c| c.max_scale_limit = 10,
                vec!["autoscaling.knative.dev/max-scale"],
            ),
            (
                json!({"autoscaling.knative.dev/maxScale": "0"}),
                |c| c.max_scale_limit = 10,
                vec!["autoscaling.knative.dev/maxScale"],
            ),
            (json!({"autoscaling.knative.dev/max-scale": "10"}), |c| c.max_scale_limit = 10, vec![]),
            (json!({"autoscaling.knative.dev/initial-scale": "0"}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/initial-scale": "0"}),
                |c| c.allow_zero_initial_scale = false,
                vec!["autoscaling.knative.dev/initial-scale"],
            ),
            (
                json!({"autoscaling.knative.dev/initialScale": "-1"}),
                none,
                vec!["autoscaling.knative.dev/initialScale"],
            ),
            (
                json!({"autoscaling.knative.dev/activation-scale": "0"}),
                none,
                vec!["autoscaling.knative.dev/activation-scale"],
            ),
            (json!({"autoscaling.knative.dev/activation-scale": "2"}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/scale-down-delay": "2h"}),
                none,
                vec!["autoscaling.knative.dev/scale-down-delay"],
            ),
            (
                json!({"autoscaling.knative.dev/scaleDownDelay": "1.5s"}),
                none,
                vec!["autoscaling.knative.dev/scaleDownDelay"],
            ),
            (
                json!({"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "61m"}),
                none,
                vec!["autoscaling.knative.dev/scale-to-zero-pod-retention-period"],
            ),
            (json!({"autoscaling.knative.dev/scale-to-zero-pod-retention-period": "1m30s"}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/metric-aggregation-algorithm": "weightedExponential"}),
                none,
                vec!["autoscaling.knative.dev/metric-aggregation-algorithm"],
            ),
            (
                json!({"autoscaling.knative.dev/min-scale": "1", "autoscaling.knative.dev/minScale": "2"}),
                none,
                vec!["autoscaling.knative.dev/minScale"],
            ),
            (
                json!({"autoscaling.knative.dev/min-scale": ["1"]}),
                none,
                vec!["autoscaling.knative.dev/min-scale"],
            ),
            (json!({"autoscaling.knative.dev/min-scale": 2}), none, vec![]),
            (
                json!({"autoscaling.knative.dev/some-future-key": "x", "other.io/min-scale": "-5"}),
                none,
                vec![],
            ),
            (
                json!({"autoscaling.knative.dev/window": "1s", "autoscaling.knative.dev/metric": "memory"}),
                none,
                vec!["autoscaling.knative.dev/window", "autoscaling.knative.dev/metric"],
            ),
        ];
        for (a, edit, want) in cases {
            let mut config = AutoscalerConfig::default();
            edit(&mut config);
            let errs = validate_annotations(&anns(a.clone()), "spec.template.metadata.annotations", &config);
            let mut got: Vec<String> = errs.iter().map(|e| e.path.clone()).collect();
            got.sort();
            let mut want: Vec<String> =
                want.iter().map(|k| format!("spec.template.metadata.annotations.{k}")).collect();
            want.sort();
            assert_eq!(got, want, "{a}: {errs:?}");
        }
    }

    #[test]
    fn from_annotations_reports_errors() {
        let m = anns(json!({"autoscaling.knative.dev/class": HPA_CLASS}));
        let errs = RevisionScaling::from_annotations(Some(&m), 0, &AutoscalerConfig::default())
            .expect_err("HPA must be refused");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].path, "metadata.annotations.autoscaling.knative.dev/class");
        assert!(errs[0].message.contains("only the KPA"), "{}", errs[0]);
    }
}
