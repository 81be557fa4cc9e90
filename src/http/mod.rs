//! The HTTP API (contract §6): the district view at `/`, metrics, health,
//! zones, car parks, alerts, sales and a live stream.

mod auth;
mod server;
pub mod shared;
mod ui;
mod view;

pub use server::{Limits, ServerSettings};

pub use view::{analytics_json, LiveView, StreamEvent};

use crate::parking::recommend::Near;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::Stream;
use serde_json::json;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;

pub fn router(view: Arc<LiveView>) -> Router {
    Router::new()
        .route("/", get(ui::index))
        .route("/ui/app.js", get(ui::app))
        .route("/ui/style.css", get(ui::style))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/livez", get(livez))
        .route(
            "/api/v1/districts",
            get(|State(v): State<Arc<LiveView>>| async move { Json(v.districts_json()) }),
        )
        .route("/api/v1/zones", get(zones))
        .route("/api/v1/zones/{id}", get(zone))
        .route("/api/v1/lots", get(lots))
        .route("/api/v1/lots/recommend", get(recommend))
        .route("/api/v1/lots/{id}", get(lot))
        .route("/api/v1/district", get(district))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/sales", get(sales))
        .route("/api/v1/stream", get(stream))
        .fallback(|| async { not_found("no such path; see /api/v1/zones, /api/v1/lots, /metrics") })
        .with_state(view)
}

/// Serves until `shutdown` completes, as `settings` say (see `server`).
pub async fn serve(
    listener: TcpListener,
    view: Arc<LiveView>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve(listener, router(view), settings, shutdown).await
}

fn not_found(message: impl Into<String>) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

async fn metrics(State(v): State<Arc<LiveView>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        v.metrics.render(),
    )
        .into_response()
}

async fn healthz(State(v): State<Arc<LiveView>>) -> Response {
    match v.health() {
        (true, _) => Json(json!({"status": "ok"})).into_response(),
        (false, reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unhealthy", "reason": reason})),
        )
            .into_response(),
    }
}

/// Ready: partitions assigned and restored, processing not held, and the
/// health verdict good (a stalled partition, a hung call or no progress makes
/// the instance not ready, as well as unhealthy).
async fn readyz(State(v): State<Arc<LiveView>>) -> Response {
    let (healthy, reason) = v.health();
    if v.is_ready() && healthy {
        return Json(json!({"ready": true})).into_response();
    }
    let reason = if healthy {
        "not serving yet: partitions are being assigned or restored, or processing holds while a checkpoint is retried or rewound".to_string()
    } else {
        reason
    };
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"ready": false, "reason": reason})),
    )
        .into_response()
}

/// Alive: the process answers and its main loop turns. Independent of the
/// broker, so a liveness probe does not restart instances during an outage.
async fn livez() -> Response {
    match crate::liveness::check() {
        Ok(()) => Json(json!({"alive": true})).into_response(),
        Err(secs) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "alive": false,
                "reason": format!("the engine's loop has not turned for {secs} s"),
            })),
        )
            .into_response(),
    }
}

/// The query of the district-scoped endpoints: `?district=<id>`.
#[derive(serde::Deserialize)]
struct InDistrict {
    district: Option<String>,
}

impl InDistrict {
    /// The district asked for, or the first configured; for an unknown id,
    /// the 404's message, naming the configured ones.
    fn one(&self, v: &LiveView) -> Result<crate::model::DistrictIx, String> {
        v.district_named(self.district.as_deref())
            .ok_or_else(|| unknown_district(v, self.district.as_deref().unwrap_or("")))
    }

    /// The district asked for, or every district when none is.
    fn filter(&self, v: &LiveView) -> Result<Option<crate::model::DistrictIx>, String> {
        match &self.district {
            None => Ok(None),
            Some(_) => self.one(v).map(Some),
        }
    }
}

fn unknown_district(v: &LiveView, id: &str) -> String {
    let ids: Vec<&str> = v.catalog.districts.iter().map(|d| d.id.as_str()).collect();
    format!("unknown district `{id}`; configured: {}", ids.join(", "))
}

/// The JSON asked for, or a 404 with the message.
fn answer(found: Result<serde_json::Value, String>) -> Response {
    match found {
        Ok(v) => Json(v).into_response(),
        Err(message) => not_found(message),
    }
}

/// `GET /api/v1/district[?district=<id>]`: one district, the first by default.
async fn district(State(v): State<Arc<LiveView>>, Query(q): Query<InDistrict>) -> Response {
    answer(q.one(&v).map(|d| v.district_json(d)))
}

/// `GET /api/v1/sales[?district=<id>]`: one district, the first by default.
async fn sales(State(v): State<Arc<LiveView>>, Query(q): Query<InDistrict>) -> Response {
    answer(q.one(&v).map(|d| v.sales_json(d)))
}

/// `GET /api/v1/zones[?district=<id>]`: every zone, or one district's.
async fn zones(State(v): State<Arc<LiveView>>, Query(q): Query<InDistrict>) -> Response {
    answer(q.filter(&v).map(|d| v.zones_json(d)))
}

/// `GET /api/v1/lots[?district=<id>]`: every car park, or one district's.
async fn lots(State(v): State<Arc<LiveView>>, Query(q): Query<InDistrict>) -> Response {
    answer(q.filter(&v).map(|d| v.lots_json(d)))
}

/// `GET /api/v1/alerts[?district=<id>]`: every alert, or one district's.
async fn alerts(State(v): State<Arc<LiveView>>, Query(q): Query<InDistrict>) -> Response {
    answer(q.filter(&v).map(|d| v.alerts_json(d)))
}

async fn zone(State(v): State<Arc<LiveView>>, Path(id): Path<String>) -> Response {
    match v.zone_json(&id) {
        Some(z) => Json(z).into_response(),
        None => not_found(format!("unknown zone `{id}`")),
    }
}

fn bad_request(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": message.into()})),
    )
        .into_response()
}

/// Longest `arrive_in` accepted: the forecast reaches an hour, and beyond a few
/// hours a recommendation is a guess.
const MAX_ARRIVE_IN_MIN: u32 = 240;

/// `GET /api/v1/lots/recommend?near=<lot id | lat,lon>&arrive_in=<minutes>`.
async fn recommend(
    State(v): State<Arc<LiveView>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let Some(near_text) = q.get("near") else {
        return bad_request("`near` is required: a car park id or `lat,lon`");
    };
    let near = match Near::parse(near_text, |s| v.catalog.lot(s).is_some()) {
        Ok(n) => n,
        Err(e) => return bad_request(e),
    };
    let arrive_in = match q.get("arrive_in").map(|s| s.parse::<u32>()) {
        None => 0,
        Some(Ok(m)) if m <= MAX_ARRIVE_IN_MIN => m,
        Some(_) => {
            return bad_request(format!(
                "`arrive_in` must be whole minutes from 0 to {MAX_ARRIVE_IN_MIN}"
            ))
        }
    };
    let ranked = crate::parking::recommend::recommend(&v.candidates(), &near, arrive_in);
    Json(json!({
        "near": near_text,
        "arrive_in": arrive_in,
        "recommendations": ranked,
    }))
    .into_response()
}

async fn lot(State(v): State<Arc<LiveView>>, Path(id): Path<String>) -> Response {
    match v.lot_json(&id) {
        Some(l) => Json(l).into_response(),
        None => not_found(format!("unknown car park `{id}`")),
    }
}

/// Alerts and availability changes as server-sent events. A client too slow to
/// keep up is told how many events it missed rather than silently skipped.
async fn stream(
    State(v): State<Arc<LiveView>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = BroadcastStream::new(v.subscribe()).map(|item| {
        Ok(match item {
            Ok(e) => Event::default().event(e.event).data(e.data),
            Err(BroadcastStreamRecvError::Lagged(n)) => {
                Event::default().event("lagged").data(n.to_string())
            }
        })
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
