//! Background services: started with the server, running through the drain, stopped
//! with the server.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora_core::server::{Server, ServerOptions, StopRequest};
use pingora_core::shutdown::Phase;
use test_support::wait_until;

#[test]
fn background_work_runs_until_the_server_stops() {
    let seen: Arc<Mutex<Vec<Phase>>> = Arc::default();
    let record = seen.clone();
    let mut server = Server::new(ServerOptions {
        graceful_shutdown_timeout: Duration::from_secs(1),
        ..ServerOptions::default()
    });
    server.add_background(
        "recorder",
        move |mut shutdown: pingora_core::shutdown::ShutdownWatch| async move {
            record.lock().unwrap().push(shutdown.phase());
            shutdown.reached(Phase::Draining).await;
            record.lock().unwrap().push(shutdown.phase());
            // Still running during the drain: it is the server that ends it.
            std::future::pending::<()>().await;
        },
    );
    assert!(seen.lock().unwrap().is_empty(), "started before the server");
    let running = server.start().expect("start");
    assert!(wait_until(Duration::from_secs(5), || seen
        .lock()
        .unwrap()
        .len()
        == 1));
    // A connection in flight keeps the drain going until the background work has seen it.
    let in_flight = running.shutdown_controller().track();
    let watcher = seen.clone();
    let finisher = std::thread::spawn(move || {
        let saw_drain = wait_until(Duration::from_secs(5), || {
            watcher.lock().unwrap().len() == 2
        });
        drop(in_flight);
        saw_drain
    });
    running.stop(StopRequest::Graceful);
    assert!(
        finisher.join().unwrap(),
        "the background work did not run during the drain"
    );
    assert_eq!(*seen.lock().unwrap(), vec![Phase::Running, Phase::Draining]);
}
