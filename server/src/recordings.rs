//! Session recordings over REST (issue 18): the console's replay reads a session's
//! records, an admin deletes a recording, and a signed link downloads it as one
//! self-contained HTML file that plays offline. Also the REST Session's video fields
//! ([`overlay`]) and the background sweep that finalises and expires recordings.
//!
//! The hub records and the store keeps (`hub::recording`, `store::recording`); this
//! module only reads, deletes and packages. Every read of a recording is audited
//! (`recording.read`, `recording.downloaded`), and so is a deletion (`recording.deleted`).
//!
//! The downloaded file is built from the console's own renderer (`www/agent/mirror.js`)
//! and replay (`www/agent/replay.js`), inlined as one script that its
//! Content-Security-Policy allows by hash (no other script runs, whatever the records
//! hold); the records are JSON inside a `<script type="application/json">` with every
//! `<` escaped, so no record can end that element. It rebuilds the page in the same
//! script-less sandbox as the live mirror, with no network at all: a recording is
//! hostile input too.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use covisit::core::codes::ErrorCode;
use covisit::core::ids::valid_id;
use covisit::core::Millis;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::access::{audit, principal, require, run};
use crate::auth::{self, Act, LinkRefusal};
use crate::errors::{ApiError, ApiResult};
use crate::state::Shared;
use crate::store::RecordingInfo;

/// What a download link is for (part of what is signed).
const LINK_PURPOSE: &str = "recording-download";
/// How long a `secret_video_url` is valid after the Session was read.
pub const LINK_VALID_SECONDS: u64 = 24 * 3600;

pub fn router() -> Router<Shared> {
    Router::new()
        .route(
            "/v1/sessions/{id}/recording",
            get(read_recording).delete(delete_recording),
        )
        .route("/v1/recordings/{id}/download", get(download))
}

fn not_available(status: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RECORDING_NOT_AVAILABLE,
        format!("this session has no recording to read (video_status: {status})"),
    )
}

/// The console's replay page of a session (it needs a sign-in).
pub fn public_url(state: &Shared, session_id: &str) -> String {
    format!("{}/agent/#/sessions/{session_id}/replay", state.public_url)
}

/// A signed download link of a session's recording, valid until `expires` (seconds).
pub fn secret_url(state: &Shared, key: &[u8], session_id: &str, expires: u64) -> String {
    let sig = auth::sign_link(key, LINK_PURPOSE, session_id, expires);
    format!(
        "{}/api/v1/recordings/{session_id}/download?expires={expires}&sig={sig}",
        state.public_url
    )
}

/// Sets the video fields of REST Sessions (seed objects of `account`) from their
/// recordings: `video_status` as the store has it once there is a recording (the
/// hub's `recording` / `not_available` before), and, for a `ready` one, the replay page
/// (`public_video_url`) and a download link valid for [`LINK_VALID_SECONDS`]
/// (`secret_video_url`).
pub async fn overlay(state: &Shared, account: i64, sessions: &mut [Value]) -> Result<(), ApiError> {
    let ids: Vec<String> = sessions
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_string))
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let recordings = state
        .store
        .recordings(account, &ids)
        .await
        .map_err(ApiError::internal)?;
    if recordings.is_empty() {
        return Ok(());
    }
    let by_id: HashMap<&str, &RecordingInfo> = recordings
        .iter()
        .map(|r| (r.session_id.as_str(), r))
        .collect();
    let key = state
        .signing_key()
        .await
        .map_err(ApiError::internal)?
        .to_vec();
    let expires = crate::clock::now().0 / 1000 + LINK_VALID_SECONDS;
    for s in sessions.iter_mut() {
        let Some(r) = s["id"].as_str().and_then(|id| by_id.get(id)).copied() else {
            continue;
        };
        let Value::Object(m) = s else { continue };
        m.insert("video_status".into(), Value::String(r.status.clone()));
        let ready = r.status == "ready";
        let (public, secret) = if ready {
            (
                Value::String(public_url(state, &r.session_id)),
                Value::String(secret_url(state, &key, &r.session_id, expires)),
            )
        } else {
            (Value::Null, Value::Null)
        };
        m.insert("public_video_url".into(), public);
        m.insert("secret_video_url".into(), secret);
    }
    Ok(())
}

/// `GET /api/v1/sessions/{id}/recording`: the records of a `ready` recording, for the
/// console's replay: `{session_id, video_status, started_at, ended_at, records}`
/// (`records`: the JSON lines of `store::recording` as one array). Audited.
async fn read_recording(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, false).await?;
        require(&p, Act::CoBrowse)?;
        let account = p.account_id();
        let info = ready_recording(&state, Some(account), &id).await?;
        let lines = state
            .store
            .recording_lines(&id)
            .await
            .map_err(ApiError::internal)?;
        audit(
            &state,
            account,
            &p.actor(),
            "recording.read",
            Some(&id),
            Some(&state.client_ip(peer, &headers)),
            "ok",
        );
        let body = format!(
            "{{\"session_id\":{},\"video_status\":\"ready\",\"started_at\":{},\"ended_at\":{},\"records\":{}}}",
            json!(info.session_id),
            json!(info.started_at),
            json!(info.ended_at),
            lines_as_array(&lines)
        );
        Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response())
    })
    .await
}

/// `DELETE /api/v1/sessions/{id}/recording`: an admin (or the secret key) deletes a
/// recording; its `video_status` becomes `removed`. Audited.
async fn delete_recording(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> ApiResult {
    run(&state, async {
        let p = principal(&state, &headers, true).await?;
        require(&p, Act::EraseVisitor)?;
        let account = p.account_id();
        if !valid_id(&id) {
            return Err(not_available("not_available"));
        }
        let removed = state
            .store
            .remove_recording(account, &id)
            .await
            .map_err(ApiError::internal)?;
        if !removed {
            return Err(not_available("not_available"));
        }
        audit(
            &state,
            account,
            &p.actor(),
            "recording.deleted",
            Some(&id),
            Some(&state.client_ip(peer, &headers)),
            "ok",
        );
        state.hub.flush().await;
        Ok(Json(json!({ "session_id": id, "video_status": "removed" })).into_response())
    })
    .await
}

/// `GET /api/v1/recordings/{id}/download?expires=&sig=`: the signed link of a
/// Session's `secret_video_url`. No sign-in: the signature is the credential (checked
/// in constant time, expiry included). Answers the self-contained player as an
/// attachment. Audited with the actor `signed_link` and the requester's address.
async fn download(
    State(state): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult {
    run(&state, async {
        let invalid = || {
            ApiError::new(
                StatusCode::FORBIDDEN,
                ErrorCode::RECORDING_LINK_INVALID,
                "this recording link is not valid",
            )
        };
        let expires: u64 = q
            .get("expires")
            .and_then(|e| e.parse().ok())
            .ok_or_else(invalid)?;
        let sig = q.get("sig").ok_or_else(invalid)?;
        if !valid_id(&id) {
            return Err(invalid());
        }
        let key = state.signing_key().await.map_err(ApiError::internal)?;
        let now_s = crate::clock::now().0 / 1000;
        match auth::verify_link(key, LINK_PURPOSE, &id, expires, sig, now_s) {
            Ok(()) => {}
            Err(LinkRefusal::BadSignature) => return Err(invalid()),
            Err(LinkRefusal::Expired) => {
                return Err(ApiError::new(
                    StatusCode::GONE,
                    ErrorCode::RECORDING_LINK_EXPIRED,
                    "this recording link has expired; the session's secret_video_url has a new one",
                ))
            }
        }
        let info = ready_recording(&state, None, &id).await?;
        let lines = state
            .store
            .recording_lines(&id)
            .await
            .map_err(ApiError::internal)?;
        let html = player_html(&state, &info, &lines).map_err(ApiError::internal)?;
        audit(
            &state,
            info.account_id,
            "signed_link",
            "recording.downloaded",
            Some(&id),
            Some(&state.client_ip(peer, &headers)),
            "ok",
        );
        state.hub.flush().await;
        let disposition = format!("attachment; filename=\"covisit-recording-{id}.html\"");
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                ),
                (
                    header::CONTENT_DISPOSITION,
                    HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static("sandbox; default-src 'none'"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            html,
        )
            .into_response())
    })
    .await
}

/// The recording of session `id` when it is `ready` (of `account`, when a person
/// asks); `recording_not_available` otherwise.
async fn ready_recording(
    state: &Shared,
    account: Option<i64>,
    id: &str,
) -> Result<RecordingInfo, ApiError> {
    if !valid_id(id) {
        return Err(not_available("not_available"));
    }
    let info = state
        .store
        .recording(id)
        .await
        .map_err(ApiError::internal)?
        .filter(|r| account.is_none_or(|a| a == r.account_id))
        .ok_or_else(|| not_available("not_available"))?;
    if info.status != "ready" {
        return Err(not_available(&info.status));
    }
    Ok(info)
}

/// JSON lines (each a record) as one JSON array.
fn lines_as_array(lines: &str) -> String {
    let mut out = String::with_capacity(lines.len() + 2);
    out.push('[');
    for (i, line) in lines.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(line);
    }
    out.push(']');
    out
}

/// Text for inside a `<script>` element: JSON whose `<` are escaped (`\u003c`), so
/// that nothing in it can close the element or open a comment there.
fn script_json(text: &str) -> String {
    text.replace('<', "\\u003c")
}

/// A console module as classic script: its `import` lines dropped (the modules are
/// concatenated in order) and `export` taken off its declarations.
fn unmodule(source: &str) -> String {
    source
        .lines()
        .filter(|l| !l.starts_with("import "))
        .map(|l| l.strip_prefix("export ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The downloadable player: one HTML file with the console's renderer and replay, the
/// mirror document and the records, and a policy that runs only that script.
fn player_html(state: &Shared, info: &RecordingInfo, lines: &str) -> Result<String, String> {
    let dir = state.www.join("agent");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("cannot read agent/{name}: {e}"))
    };
    let (mirror, replay, frame_doc, css) = (
        read("mirror.js")?,
        read("replay.js")?,
        read("mirror.html")?,
        read("replay.css")?,
    );
    let script = format!(
        "'use strict';\n(() => {{\n{}\n{}\nconst FRAME_DOC = {};\nstartPlayer(document.getElementById('replay'), JSON.parse(document.getElementById('covisit-recording').textContent), {{ View: MirrorView, frameDoc: FRAME_DOC }});\n}})();\n",
        unmodule(&mirror),
        unmodule(&replay),
        script_json(&serde_json::to_string(&frame_doc).map_err(|e| e.to_string())?),
    );
    let lower = script.to_ascii_lowercase();
    if lower.contains("</script") || lower.contains("<!--") {
        return Err("the console's scripts cannot be inlined (they hold </script or <!--)".into());
    }
    let hash = base64_sha256(&script);
    let recording = format!(
        "{{\"session_id\":{},\"started_at\":{},\"ended_at\":{},\"records\":{}}}",
        json!(info.session_id),
        json!(info.started_at),
        json!(info.ended_at),
        lines_as_array(lines)
    );
    let csp = format!(
        "default-src 'none'; script-src 'sha256-{hash}'; style-src 'unsafe-inline'; img-src data: blob:; \
         font-src data: blob:; media-src data: blob:; frame-src 'self'; connect-src 'none'; \
         object-src 'none'; base-uri 'none'; form-action 'none'"
    );
    Ok(format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>covisit recording {id}</title>\n<style>{css}</style>\n</head>\n<body>\n\
         <main id=\"replay\" class=\"replay\" data-testid=\"replay\"></main>\n\
         <script type=\"application/json\" id=\"covisit-recording\">{records}</script>\n\
         <script>{script}</script>\n</body>\n</html>\n",
        id = info.session_id,
        css = css.replace('<', "\\3c "),
        records = script_json(&recording),
    ))
}

fn base64_sha256(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::new();
    for chunk in digest.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Starts the background sweep: every so often (a tenth of the retention, between a
/// second and ten minutes), recordings a stopped node left `pending` are finalised, and
/// those whose session ended more than the retention ago expire (their records deleted).
pub fn spawn_sweep(state: Shared) {
    let retention = state.recording_retention;
    let every = (retention / 10).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(600),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = crate::clock::now();
            let cutoff = Millis(now.0.saturating_sub(retention.as_millis() as u64));
            match state.store.sweep_recordings(&cutoff.to_iso8601()).await {
                Ok((0, 0)) => {}
                Ok((finalised, expired)) => {
                    tracing::info!(finalised, expired, "recordings swept")
                }
                Err(e) => tracing::error!(error = %e, "the recordings' sweep failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_in_base64_as_csp_hashes_want_it() {
        // echo -n abc | openssl dgst -sha256 -binary | base64
        assert_eq!(
            base64_sha256("abc"),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(
            base64_sha256(""),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn records_cannot_close_their_script_element() {
        let lines = "[1,\"m\",\"t\",[[\"T\",3,\"</script><script>alert(1)</script><!--\"]]]\n";
        let text = script_json(&lines_as_array(lines));
        assert!(!text.contains('<'));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back[0][3][0][2], "</script><script>alert(1)</script><!--");
    }

    #[test]
    fn modules_become_one_script() {
        let src =
            "import { A } from './a.js';\nexport class B {}\nexport function c() {}\nconst d = 1;";
        assert_eq!(unmodule(src), "class B {}\nfunction c() {}\nconst d = 1;");
    }
}
