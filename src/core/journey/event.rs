//! What the SDK tracks, as it crosses the wire: raw page facts and custom events, and
//! their validation. This is the only journey code the SDK links, so it stays small:
//! no URL parsing, no classification (the server does that, see `tracker.rs`).

use crate::core::codes::ErrorCode;
use crate::core::json::{Json, Object};
use serde::{Deserialize, Serialize};

/// Most events in one `track` frame or beacon.
pub const MAX_EVENTS_PER_BATCH: usize = 100;
/// Longest event name, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 64;
/// Most attributes on one custom event.
pub const MAX_ATTRIBUTES: usize = 50;
/// Longest attribute name, in bytes.
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 64;
/// Largest attributes object of one event, encoded as JSON, in bytes.
pub const MAX_ATTRIBUTES_BYTES: usize = 4096;
/// Longest URL (page or referrer), in bytes.
pub const MAX_URL_LEN: usize = 4096;
/// Longest other text fact (title, keywords, language, platform), in bytes.
pub const MAX_FACT_LEN: usize = 1024;
/// Largest page view the SDK queues (its facts as JSON), in bytes.
pub const MAX_PAGE_FACTS_BYTES: usize = 16 * 1024;

/// What the page knows about itself when a page is viewed (page load or SPA
/// navigation). The facade reads these from the DOM; the server derives the rest
/// (URL parts, referrer kind, search terms, campaign, browser and device families).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", default)]
// Absent facts are left out (skip_serializing_if); serde's container `default` reads
// them back, which ts-rs does not see on its own.
#[cfg_attr(test, ts(optional_fields = nullable))]
pub struct PageFacts {
    /// When it happened, in the page's clock (the client sets it from `now`).
    pub at: u64,
    /// `location.href`.
    pub url: String,
    /// `document.title`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `document.referrer` on a page load; the previous URL on an SPA navigation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// `navigator.language` (the browser's language).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// `document.documentElement.lang` (the page's language).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_lang: Option<String>,
    /// `<meta name="keywords">`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keywords: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen_width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen_height: Option<u32>,
    /// User-Agent Client Hints `navigator.userAgentData.platform`, where present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// User-Agent Client Hints `navigator.userAgentData.mobile`, where present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mobile: Option<bool>,
    /// `navigator.pdfViewerEnabled`, where present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdf: Option<bool>,
    /// Whether `RTCPeerConnection` exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webrtc: Option<bool>,
}

/// One tracked event. Tagged by `kind`: `page_view` or `custom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrackEvent {
    PageView(PageFacts),
    /// `cv.track(eventName, attributes)`.
    Custom {
        at: u64,
        #[serde(rename = "eventName")]
        event_name: String,
        #[serde(default)]
        #[cfg_attr(test, ts(type = "Record<string, unknown>"))]
        attributes: Object,
    },
}

impl TrackEvent {
    /// When it happened, in the page's clock.
    pub fn at(&self) -> u64 {
        match self {
            TrackEvent::PageView(p) => p.at,
            TrackEvent::Custom { at, .. } => *at,
        }
    }
}

/// Why a tracked event or batch was refused. Codes are stable (JS `error.code`, the
/// server's error frames and beacon answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackError {
    InvalidEventName {
        reason: &'static str,
    },
    InvalidAttributes {
        reason: &'static str,
    },
    InvalidPageView {
        field: &'static str,
        reason: &'static str,
    },
    TooManyEvents {
        count: usize,
    },
}

impl TrackError {
    /// The message for people (no `core::fmt`: see [`crate::core::text`]).
    pub fn message(&self) -> String {
        use crate::core::text::decimal;
        match self {
            TrackError::InvalidEventName { reason } => ["event name is invalid: ", reason].concat(),
            TrackError::InvalidAttributes { reason } => {
                ["event attributes are invalid: ", reason].concat()
            }
            TrackError::InvalidPageView { field, reason } => {
                ["page view `", field, "` is invalid: ", reason].concat()
            }
            TrackError::TooManyEvents { count } => [
                "a batch holds at most ",
                &decimal(MAX_EVENTS_PER_BATCH as u64, 0),
                " events, this one ",
                &decimal(*count as u64, 0),
            ]
            .concat(),
        }
    }
}

crate::core::text::message_display!(TrackError);

impl TrackError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TrackError::InvalidEventName { .. } => ErrorCode::INVALID_EVENT_NAME,
            TrackError::InvalidAttributes { .. } => ErrorCode::INVALID_ATTRIBUTES,
            TrackError::InvalidPageView { .. } => ErrorCode::INVALID_PAGE_VIEW,
            TrackError::TooManyEvents { .. } => ErrorCode::TOO_MANY_EVENTS,
        }
    }
}

/// Checks a custom event's name and attributes (the SDK before queueing, the server
/// again on arrival). Names: 1 to 64 bytes of letters, digits, `_ - . :` and spaces.
/// Attributes: at most 50, names 1 to 64 bytes, values a string, number or boolean,
/// or a list of one of those; at most 4 KiB as JSON.
pub fn validate_custom(event_name: &str, attributes: &Object) -> Result<(), TrackError> {
    let bad_name = |reason| Err(TrackError::InvalidEventName { reason });
    if event_name.trim().is_empty() || event_name.len() > MAX_EVENT_NAME_LEN {
        return bad_name("must be 1 to 64 characters");
    }
    if !event_name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b' '))
    {
        return bad_name("may hold only letters, digits, spaces and _ - . :");
    }
    let bad = |reason| Err(TrackError::InvalidAttributes { reason });
    if attributes.len() > MAX_ATTRIBUTES {
        return bad("at most 50 attributes");
    }
    for (key, value) in attributes {
        if key.is_empty() || key.len() > MAX_ATTRIBUTE_NAME_LEN {
            return bad("attribute names must be 1 to 64 characters");
        }
        let ok = match value {
            Json::String(_) | Json::Number(_) | Json::Bool(_) => true,
            Json::Array(items) => items.iter().all(|i| {
                matches!(i, Json::String(_) | Json::Number(_) | Json::Bool(_))
                    && std::mem::discriminant(i) == std::mem::discriminant(&items[0])
            }),
            Json::Null | Json::Object(_) => false,
        };
        if !ok {
            return bad(
                "values must be a string, number or boolean, or a list of one kind of them",
            );
        }
    }
    if serde_json::to_string(attributes).map_or(true, |s| s.len() > MAX_ATTRIBUTES_BYTES) {
        return bad("at most 4 KiB of attributes per event");
    }
    Ok(())
}

/// Checks a page view's facts: an `http(s)` URL and texts within their limits.
pub fn validate_page(facts: &PageFacts) -> Result<(), TrackError> {
    let bad = |field, reason| Err(TrackError::InvalidPageView { field, reason });
    let http = |u: &str| u.starts_with("https://") || u.starts_with("http://");
    if !http(&facts.url) || facts.url.len() > MAX_URL_LEN {
        return bad("url", "must be an http(s) URL of at most 4096 bytes");
    }
    if facts
        .referrer
        .as_ref()
        .is_some_and(|r| r.len() > MAX_URL_LEN)
    {
        return bad("referrer", "must be at most 4096 bytes");
    }
    for (field, text) in [
        ("title", &facts.title),
        ("lang", &facts.lang),
        ("pageLang", &facts.page_lang),
        ("keywords", &facts.keywords),
        ("platform", &facts.platform),
    ] {
        if text.as_ref().is_some_and(|t| t.len() > MAX_FACT_LEN) {
            return bad(field, "must be at most 1024 bytes");
        }
    }
    Ok(())
}

/// Checks one event of either kind.
pub fn validate_event(event: &TrackEvent) -> Result<(), TrackError> {
    match event {
        TrackEvent::PageView(p) => validate_page(p),
        TrackEvent::Custom {
            event_name,
            attributes,
            ..
        } => validate_custom(event_name, attributes),
    }
}

/// Checks a whole batch: its size, then every event.
pub fn validate_batch(events: &[TrackEvent]) -> Result<(), TrackError> {
    if events.len() > MAX_EVENTS_PER_BATCH {
        return Err(TrackError::TooManyEvents {
            count: events.len(),
        });
    }
    events.iter().try_for_each(validate_event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: serde_json::Value) -> Object {
        Json::from(v).as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn custom_events_are_checked() {
        let ok = attrs(json!({"sku": "A-17", "price": 19.9, "gift": false, "tags": ["red", "xl"]}));
        assert_eq!(validate_custom("add_to_cart", &ok), Ok(()));
        assert_eq!(validate_custom("checkout:step 2", &Object::new()), Ok(()));
        for name in ["", "   ", "a/b", "naïve", &"x".repeat(65)] {
            assert_eq!(
                validate_custom(name, &ok).unwrap_err().code(),
                "invalid_event_name",
                "{name}"
            );
        }
        for bad in [
            json!({"a": null}),
            json!({"a": {"nested": 1}}),
            json!({"a": [1, "two"]}),
            json!({"a": [[1]]}),
            json!({"": 1}),
            json!({"a": "x".repeat(5000)}),
        ] {
            assert_eq!(
                validate_custom("e", &attrs(bad.clone()))
                    .unwrap_err()
                    .code(),
                "invalid_attributes",
                "{bad}"
            );
        }
        let many: Object = (0..51)
            .map(|i| (format!("k{i}"), Json::from(json!(i))))
            .collect();
        assert!(validate_custom("e", &many).is_err());
    }

    #[test]
    fn page_views_and_batches_are_checked() {
        let page = PageFacts {
            url: "https://shop.example.com/".into(),
            ..Default::default()
        };
        assert_eq!(validate_page(&page), Ok(()));
        let js = PageFacts {
            url: "javascript:alert(1)".into(),
            ..Default::default()
        };
        assert_eq!(validate_page(&js).unwrap_err().code(), "invalid_page_view");
        let long_title = PageFacts {
            title: Some("t".repeat(2000)),
            ..page.clone()
        };
        assert!(validate_page(&long_title).is_err());
        let batch = vec![TrackEvent::PageView(page); 101];
        assert_eq!(
            validate_batch(&batch).unwrap_err().code(),
            "too_many_events"
        );
        assert_eq!(validate_batch(&batch[..100]), Ok(()));
    }

    #[test]
    fn events_encode_compactly_and_round_trip() {
        let e = TrackEvent::PageView(PageFacts {
            at: 5,
            url: "https://a.example/".into(),
            view_width: Some(800),
            ..Default::default()
        });
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"page_view","at":5,"url":"https://a.example/","viewWidth":800}"#
        );
        assert_eq!(serde_json::from_str::<TrackEvent>(&text).unwrap(), e);
        let c: TrackEvent =
            serde_json::from_str(r#"{"kind":"custom","at":9,"eventName":"signup"}"#).unwrap();
        assert_eq!(c.at(), 9);
    }
}
