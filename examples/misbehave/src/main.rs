//! `misbehave`: a guest that does what guests must not, on purpose, so that tests and
//! demos can show the host containing it. `/trap` panics, `/loop` spins forever,
//! `/alloc` grows memory until it fails, `/spam` writes to stdout without end;
//! `/sleep?ms=N` holds its request N milliseconds without using the CPU (load for the
//! autoscaler, like Knative's `autoscale-go` sample); anything else answers `fine`.

use wstd::http::{Body, Error, Request, Response};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    match request.uri().path() {
        "/trap" => panic!("misbehave: trapping on purpose"),
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/sleep" => {
            let ms = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|pair| pair.strip_prefix("ms=")))
                .and_then(|ms| ms.parse::<u64>().ok())
                .unwrap_or(100);
            wstd::task::sleep(wstd::time::Duration::from_millis(ms)).await;
            Ok(Response::new(format!("slept {ms} ms\n").into()))
        }
        "/spam" => loop {
            println!("misbehave: spamming stdout on purpose, over and over again");
        },
        _ => Ok(Response::new("fine\n".to_string().into())),
    }
}
