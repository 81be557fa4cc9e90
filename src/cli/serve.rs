//! Running the engine: the runtime, signals, the HTTP server beside it.

use crate::config::Config;
use crate::engine::Engine;
use crate::io::demo::{self, DemoOptions};
use std::process::ExitCode;
use std::sync::Arc;

/// How long `run` may take to stop after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(4500);

/// The contract's limit: the process is gone this long after SIGTERM,
/// whatever it waits for.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_millis(4900);

/// Exits the process after `limit` from a thread of its own, if it has not
/// ended by then. The graceful path gives up at `SHUTDOWN_GRACE`, but it runs
/// on the runtime, and a call hung inside librdkafka, or the runtime's own
/// shutdown, can hold it past the 5 s the contract promises (measured: 6.5 s).
fn exit_at_the_latest(limit: std::time::Duration) {
    let _ = std::thread::Builder::new()
        .name("crowdpark-exit".into())
        .spawn(move || {
            std::thread::sleep(limit);
            eprintln!(
                "error: still stopping {} s after the signal; exiting now (the next run resumes from the last committed checkpoint)",
                limit.as_secs_f64()
            );
            std::process::exit(1);
        });
}

/// Resolves when SIGTERM or SIGINT (Ctrl-C) arrives.
async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub(super) async fn run_kafka(cfg: Config) -> ExitCode {
    let config = Arc::new(cfg);
    // One of several instances: the API answers for the whole district.
    let view = crate::io::shared_live_view(&Engine::new(config.clone()));
    let Some((listener, url, http_settings)) = bind(&config.http).await else {
        return ExitCode::from(2);
    };
    println!(
        "crowdpark run: brokers {}, group {}, HTTP on {url}",
        config.kafka.brokers, config.kafka.group_id
    );
    let shutdown = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop_http, server) = spawn_http(listener, view.clone(), http_settings);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let (config, view, shutdown) = (config.clone(), view.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name("pipeline".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::io::kafka::runner::run(config, view, shutdown)
                }));
                let _ = done_tx.send(r);
            })
            .expect("a thread can be spawned");
    }
    tokio::pin!(done_rx);
    let result = tokio::select! {
        _ = termination() => {
            tracing::info!("signal received; shutting down");
            shutdown.store(true, std::sync::atomic::Ordering::Relaxed);
            exit_at_the_latest(SHUTDOWN_LIMIT);
            // The final checkpoint normally takes well under a second; a
            // broker that is away must not keep an orchestrator's SIGTERM
            // waiting. Leaving without it is as safe as a crash: the next run
            // resumes from the last committed checkpoint.
            match tokio::time::timeout(SHUTDOWN_GRACE, &mut done_rx).await {
                Ok(r) => r,
                Err(_) => {
                    eprintln!(
                        "error: the final checkpoint did not finish within {} s; exiting without it (the next run resumes from the last committed checkpoint)",
                        SHUTDOWN_GRACE.as_secs_f64()
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
        r = &mut done_rx => r,
    };
    let _ = stop_http.send(());
    let _ = server.await;
    match result {
        Ok(Ok(Ok(s))) => {
            println!("stopped: consumed {}, {} commits", s.consumed, s.commits);
            ExitCode::SUCCESS
        }
        Ok(Ok(Err(e))) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
        _ => {
            eprintln!("error: the pipeline thread panicked");
            ExitCode::FAILURE
        }
    }
}

/// Serves the HTTP API until the returned sender is used (or dropped).
fn spawn_http(
    listener: tokio::net::TcpListener,
    view: Arc<crate::http::LiveView>,
    settings: crate::http::ServerSettings,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(listener, view, settings, async {
        let _ = stopped.await;
    }));
    (stop, server)
}

/// Binds the HTTP listener and prepares its TLS and authentication; says why
/// on failure. The URL is `http://addr` or `https://addr`.
async fn bind(
    http: &crate::config::HttpSettings,
) -> Option<(tokio::net::TcpListener, String, crate::http::ServerSettings)> {
    let mut settings = match crate::http::ServerSettings::from_config(http) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return None;
        }
    };
    cap_connections(&mut settings, http.max_connections);
    match tokio::net::TcpListener::bind(&http.listen).await {
        Ok(l) => {
            let addr = l.local_addr().map(|a| a.to_string()).unwrap_or_default();
            let scheme = if settings.tls.is_some() {
                "https"
            } else {
                "http"
            };
            Some((l, format!("{scheme}://{addr}"), settings))
        }
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", http.listen);
            None
        }
    }
}

/// Raises the open-file limit and caps the HTTP connections to what it leaves
/// after the engine's own descriptors (`crate::limits`), saying both.
fn cap_connections(settings: &mut crate::http::ServerSettings, configured: usize) {
    match crate::limits::raise_open_files() {
        Ok(files) => {
            let cap = crate::limits::connection_cap(configured, files.soft);
            settings.limits.max_connections = cap;
            tracing::info!(
                soft = files.soft,
                hard = files.hard,
                http_connections = cap,
                configured,
                reserved = crate::limits::RESERVED_FOR_ENGINE,
                "open-file limit; HTTP connections capped to what it leaves the engine"
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read the open-file limit; http.max_connections applies as configured")
        }
    }
}

pub(super) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime can be built")
}

pub(super) async fn run_demo(cfg: Config, opts: DemoOptions, hold: bool) -> ExitCode {
    let config = Arc::new(cfg);
    let engine = Engine::new(config.clone());
    let view = crate::io::live_view(&engine);
    let Some((listener, url, http_settings)) = bind(&config.http).await else {
        return ExitCode::from(2);
    };
    println!(
        "crowdpark demo: {} — {} zones, {} car parks ({} spaces), {} merchants; simulated time runs {}× real time",
        config.districts().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", "),
        config.zones.len(),
        config.lots.len(),
        config.total_spaces(),
        config.merchants.len(),
        opts.speed
    );
    println!(
        "HTTP on {url}  (open {url}/ for the district view; /api/v1/zones /api/v1/lots /api/v1/stream /metrics /healthz)"
    );
    println!("Ctrl-C stops.");
    let (stop_http, server) = spawn_http(listener, view.clone(), http_settings);
    // SIGTERM (docker stop, systemd) is Ctrl-C: stop and print the summary.
    let result = demo::run(config.clone(), view, engine, opts, termination()).await;
    if hold && result.is_ok() {
        println!("holding the last state on {url}; Ctrl-C stops.");
        termination().await;
    }
    let _ = stop_http.send(());
    let _ = server.await;
    match result {
        Ok(s) => {
            let mut topics: Vec<_> = s.outputs_by_topic.iter().collect();
            topics.sort();
            println!(
                "summary: {:.0} simulated minutes; consumed {} = accepted {} + dead-lettered {} + duplicates {}; published {}",
                s.simulated_minutes,
                s.consumed,
                s.accepted,
                s.rejected,
                s.duplicates,
                topics.iter().map(|(t, n)| format!("{t} {n}")).collect::<Vec<_>>().join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
