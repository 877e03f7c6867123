//! [`JourneyTracker`]: one visitor's current journey session, fed the tracked events in
//! order. It opens a session on the first event, rolls over to a new one after the
//! inactivity timeout, counts page views and events, keeps the last page and event,
//! takes the referrer, campaign and search terms from the pages, projects custom event
//! attributes into `attributes`/`attributeLists`, and computes `idleDate`/`awayDate`.
//!
//! Sans-IO like the rest of the core: time comes in as [`Millis`], ids come from the
//! caller, enrichment the server knows (browser and device family from the user
//! agent, IP, GeoIP) comes in a [`VisitorContext`].

use serde_json::{Map, Value};

use super::event::{PageFacts, TrackEvent};
use super::url_facts;
use crate::core::model::{
    Browser, CustomEventAttribute, CustomEventAttributeList, Device, JourneyGeolocation,
    JourneySession, SdkLibrary, SessionLastEvent,
};
use crate::core::Millis;

/// A batch of tracked events as it arrived at the server, and from whom (the socket
/// or the beacon checked who it is; a node of several hands it to the visitor's owner).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackInput {
    pub account_id: i64,
    pub short_id: String,
    pub ip: String,
    pub user_agent: Option<String>,
    pub authenticated: bool,
    pub sent_at: u64,
    pub events: Vec<TrackEvent>,
}

/// Minutes of inactivity after which the visitor counts as idle, by default.
pub const DEFAULT_IDLE_AFTER_SECONDS: u64 = 5 * 60;
/// Minutes of inactivity after which the visitor counts as away, by default.
pub const DEFAULT_AWAY_AFTER_SECONDS: u64 = 30 * 60;
/// Inactivity after which the journey session ends, by default.
pub const DEFAULT_SESSION_TIMEOUT_SECONDS: u64 = 30 * 60;
/// Most search terms kept per session.
pub const MAX_SEARCH_TERMS: usize = 50;
/// Most names in a session's `attributes`, and in its `attributeLists`: a page
/// inventing names in every event must not grow the session without end (it is stored
/// whole on every batch). Past it, new names are dropped; known ones still update.
pub const MAX_SESSION_ATTRIBUTES: usize = 200;
/// The event name of a page view in `lastEvent`.
pub const PAGE_VIEW_EVENT: &str = "page_viewed";

/// The thresholds and the site's search parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JourneyOptions {
    pub idle_after_seconds: u64,
    pub away_after_seconds: u64,
    pub session_timeout_seconds: u64,
    /// Query parameters of the site's own search (`/search?q=…`).
    pub site_search_params: Vec<String>,
}

impl Default for JourneyOptions {
    fn default() -> Self {
        JourneyOptions {
            idle_after_seconds: DEFAULT_IDLE_AFTER_SECONDS,
            away_after_seconds: DEFAULT_AWAY_AFTER_SECONDS,
            session_timeout_seconds: DEFAULT_SESSION_TIMEOUT_SECONDS,
            site_search_params: vec!["q".into(), "search".into()],
        }
    }
}

/// What the server knows about the visitor when its events arrive.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VisitorContext {
    /// The visitor's stable id (`customerId`, type `cookie`).
    pub customer_id: String,
    /// The page identified the visitor with `uniqueId`.
    pub authenticated: bool,
    pub user_agent: Option<String>,
    pub ip_address: Option<String>,
    pub ip_organization: Option<String>,
    pub geolocation: Option<JourneyGeolocation>,
    /// Family, version and mobile flag from the user agent.
    pub browser: Browser,
    /// Category, type, OS from the user agent.
    pub device: Device,
    /// The SDK's version (`sdkLibrary.version`).
    pub sdk_version: String,
}

/// Ids for a new journey session, made by the caller (randomness is I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: String,
    /// 4–6 digits.
    pub short_id: String,
}

/// What an event did to the tracker.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Added to the current session.
    Continued,
    /// Opened a new session; `ended` is the one it replaced, if any (now with its
    /// `endedDate`).
    Started { ended: Option<Box<JourneySession>> },
}

/// One visitor's journey. See the module docs.
#[derive(Debug, Clone, PartialEq)]
pub struct JourneyTracker {
    options: JourneyOptions,
    current: Option<JourneySession>,
}

impl JourneyTracker {
    /// Resumes from the visitor's latest stored session, if any.
    pub fn new(options: JourneyOptions, current: Option<JourneySession>) -> JourneyTracker {
        JourneyTracker { options, current }
    }

    pub fn options(&self) -> &JourneyOptions {
        &self.options
    }

    /// The current (or last, if ended) session.
    pub fn current(&self) -> Option<&JourneySession> {
        self.current.as_ref()
    }

    /// The last activity of the current session.
    pub fn last_activity(&self) -> Option<Millis> {
        self.current.as_ref().map(last_activity)
    }

    /// When the current open session times out.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let s = self.current.as_ref().filter(|s| s.ended_date.is_none())?;
        Some(last_activity(s).plus_seconds(self.options.session_timeout_seconds))
    }

    /// Ends the current session if `now` is at or past its timeout (`endedDate` = the
    /// moment it timed out). Early or twice is harmless. Returns true when it ended.
    pub fn handle_timeout(&mut self, now: Millis) -> bool {
        match (self.poll_timeout(), self.current.as_mut()) {
            (Some(deadline), Some(s)) if deadline <= now => {
                s.ended_date = Some(deadline.to_iso8601());
                true
            }
            _ => false,
        }
    }

    /// Ends the current session now (the visitor was erased). True when it was open.
    pub fn end(&mut self, now: Millis) -> bool {
        self.handle_timeout(now);
        match self.current.as_mut().filter(|s| s.ended_date.is_none()) {
            Some(s) => {
                s.ended_date = Some(now.max(last_activity(s)).to_iso8601());
                true
            }
            None => false,
        }
    }

    /// Applies one event that happened at `at` (server clock). `event_id` names it in
    /// `lastEvent`; `new_session` is asked for ids only when a session opens. Times
    /// before the session's last activity are taken as that activity (events are
    /// applied in order, and the tracker's dates never go backwards).
    pub fn handle_event(
        &mut self,
        at: Millis,
        event_id: String,
        event: &TrackEvent,
        ctx: &VisitorContext,
        new_session: impl FnOnce() -> NewSession,
    ) -> Applied {
        self.handle_timeout(at);
        let mut applied = Applied::Continued;
        let at = match &self.current {
            Some(s) if s.ended_date.is_none() => at.max(last_activity(s)),
            _ => {
                let ended = self.current.take().map(Box::new);
                let ids = new_session();
                self.current = Some(open(ids, at, ctx));
                applied = Applied::Started { ended };
                at
            }
        };
        let Some(s) = self.current.as_mut() else {
            return applied; // just set above
        };
        apply_context(s, ctx);
        s.event_count += 1;
        let name = match event {
            TrackEvent::PageView(page) => {
                apply_page(s, page, &self.options);
                PAGE_VIEW_EVENT.to_string()
            }
            TrackEvent::Custom {
                event_name,
                attributes,
                ..
            } => {
                project_attributes(s, &attributes.clone().into());
                event_name.clone()
            }
        };
        s.last_event = SessionLastEvent {
            id: event_id,
            event_name: name,
            created_date: at.to_iso8601(),
        };
        let created = Millis::parse_iso8601(&s.created_date).unwrap_or(at);
        s.duration_in_seconds = at.seconds_since(created);
        s.idle_date = at
            .plus_seconds(self.options.idle_after_seconds)
            .to_iso8601();
        s.away_date = at
            .plus_seconds(self.options.away_after_seconds)
            .to_iso8601();
        applied
    }
}

/// When the session last saw activity: its last event (its creation before any).
pub fn last_activity(s: &JourneySession) -> Millis {
    Millis::parse_iso8601(&s.last_event.created_date)
        .or_else(|| Millis::parse_iso8601(&s.created_date))
        .unwrap_or_default()
}

/// Whether the visitor counts as idle / away at `now` (`idleDate`/`awayDate` passed).
pub fn idle_and_away(s: &JourneySession, now: Millis) -> (bool, bool) {
    let passed = |d: &str| Millis::parse_iso8601(d).is_some_and(|d| d <= now);
    (passed(&s.idle_date), passed(&s.away_date))
}

fn open(ids: NewSession, at: Millis, ctx: &VisitorContext) -> JourneySession {
    let self_uri = format!("/api/v1/journey/sessions/{}", ids.id);
    JourneySession {
        id: ids.id,
        external_contact: None,
        customer_id: Some(ctx.customer_id.clone()),
        customer_id_type: Some("cookie".into()),
        session_type: "web".into(),
        external_id: None,
        external_url: None,
        short_id: ids.short_id,
        outcome_achievements: Vec::new(),
        segment_assignments: Vec::new(),
        attributes: Map::new(),
        attribute_lists: Map::new(),
        browser: Browser::default(),
        device: Device::default(),
        geolocation: None,
        ip_address: None,
        ip_organization: None,
        last_page: None,
        mkt_campaign: None,
        referrer: None,
        app: None,
        sdk_library: SdkLibrary {
            name: "covisit-web".into(),
            version: ctx.sdk_version.clone(),
        },
        network_connectivity: None,
        search_terms: Vec::new(),
        user_agent_string: None,
        duration_in_seconds: 0,
        event_count: 0,
        pageview_count: 0,
        screenview_count: 0,
        last_event: SessionLastEvent {
            id: String::new(),
            event_name: String::new(),
            created_date: at.to_iso8601(),
        },
        conversation: None,
        last_connected_queue: None,
        last_connected_user: None,
        last_user_disposition: None,
        conversation_channels: Vec::new(),
        originating_direction: None,
        conversation_subject: None,
        last_user_disconnect_type: None,
        last_acd_outcome: None,
        authenticated: false,
        division_ids: Vec::new(),
        last_screen: None,
        self_uri,
        created_date: at.to_iso8601(),
        ended_date: None,
        away_date: at.to_iso8601(),
        idle_date: at.to_iso8601(),
    }
}

/// The server's enrichment: latest IP, GeoIP, user agent; authenticated stays true.
fn apply_context(s: &mut JourneySession, ctx: &VisitorContext) {
    s.authenticated |= ctx.authenticated;
    if ctx.ip_address.is_some() {
        s.ip_address = ctx.ip_address.clone();
        s.ip_organization = ctx.ip_organization.clone();
        s.geolocation = ctx.geolocation.clone();
    }
    if ctx.user_agent.is_some() {
        s.user_agent_string = ctx.user_agent.clone();
    }
    let b = &mut s.browser;
    b.family = ctx.browser.family.clone().or(b.family.take());
    b.version = ctx.browser.version.clone().or(b.version.take());
    b.is_mobile = ctx.browser.is_mobile.or(b.is_mobile);
    let d = &mut s.device;
    d.category = ctx.device.category.clone().or(d.category.take());
    d.device_type = ctx.device.device_type.clone().or(d.device_type.take());
    d.is_mobile = ctx.device.is_mobile.or(d.is_mobile);
    d.os_version = ctx.device.os_version.clone().or(d.os_version.take());
    // The page's Client Hints platform (set by `apply_page`) beats the user agent's.
    if d.os_family.is_none() {
        d.os_family = ctx.device.os_family.clone();
    }
}

fn apply_page(s: &mut JourneySession, page: &PageFacts, options: &JourneyOptions) {
    s.pageview_count += 1;
    let last = url_facts::journey_page(
        &page.url,
        page.title.clone(),
        page.keywords.clone(),
        page.page_lang.clone(),
    );
    // The session's referrer is its landing page's.
    if s.referrer.is_none() {
        let referrer =
            url_facts::classify_referrer(page.referrer.as_deref(), last.hostname.as_deref());
        if let Some(k) = &referrer.keywords {
            add_term(&mut s.search_terms, k);
        }
        s.referrer = Some(referrer);
    }
    if s.mkt_campaign.is_none() {
        s.mkt_campaign = url_facts::campaign(&page.url);
    }
    if let Some(terms) = url_facts::site_search_terms(&page.url, &options.site_search_params) {
        add_term(&mut s.search_terms, &terms);
    }
    s.last_page = Some(last);
    let b = &mut s.browser;
    b.lang = page.lang.clone().or(b.lang.take());
    b.view_width = page.view_width.or(b.view_width);
    b.view_height = page.view_height.or(b.view_height);
    b.features_pdf = page.pdf.or(b.features_pdf);
    b.features_webrtc = page.webrtc.or(b.features_webrtc);
    let d = &mut s.device;
    d.screen_width = page.screen_width.or(d.screen_width);
    d.screen_height = page.screen_height.or(d.screen_height);
    if let Some(m) = page.mobile {
        d.is_mobile = Some(m);
        b.is_mobile = Some(m);
    }
    if let Some(p) = page.platform.clone().filter(|p| !p.is_empty()) {
        d.os_family = Some(p);
    }
}

fn add_term(terms: &mut Vec<String>, term: &str) {
    if terms.len() < MAX_SEARCH_TERMS && !terms.iter().any(|t| t.eq_ignore_ascii_case(term)) {
        terms.push(term.to_string());
    }
}

/// Genesys `dataType` of a scalar attribute value.
fn data_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        _ => "string",
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Scalars go to `attributes` (latest value wins), lists to `attributeLists`.
fn project_attributes(s: &mut JourneySession, attributes: &Map<String, Value>) {
    for (key, value) in attributes {
        let projected = match value {
            Value::Array(items) => {
                // One kind of value (validation): numbers are `integer` only when all are.
                let kind = match items.iter().map(data_type).find(|t| *t == "number") {
                    Some(number) => number,
                    None => items.first().map_or("string", data_type),
                };
                let list = CustomEventAttributeList {
                    data_type: kind.to_string(),
                    values: items.iter().map(text).collect(),
                };
                if s.attribute_lists.len() < MAX_SESSION_ATTRIBUTES
                    || s.attribute_lists.contains_key(key)
                {
                    s.attribute_lists
                        .insert(key.clone(), serde_json::to_value(list).unwrap_or_default());
                }
                continue;
            }
            Value::Null | Value::Object(_) => continue, // refused by validation
            scalar => CustomEventAttribute {
                data_type: data_type(scalar).to_string(),
                value: text(scalar),
            },
        };
        if s.attributes.len() < MAX_SESSION_ATTRIBUTES || s.attributes.contains_key(key) {
            s.attributes.insert(
                key.clone(),
                serde_json::to_value(projected).unwrap_or_default(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: Millis = Millis(1_795_255_445_000);

    fn ctx() -> VisitorContext {
        VisitorContext {
            customer_id: "v_7Kq2".into(),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0".into()),
            ip_address: Some("203.0.113.7".into()),
            browser: Browser {
                family: Some("Chrome".into()),
                version: Some("120.0.0.0".into()),
                ..Browser::default()
            },
            device: Device {
                category: Some("desktop".into()),
                os_family: Some("Linux".into()),
                ..Device::default()
            },
            sdk_version: "0.1.0".into(),
            ..VisitorContext::default()
        }
    }

    fn page(at: Millis, url: &str, referrer: Option<&str>) -> TrackEvent {
        TrackEvent::PageView(PageFacts {
            at: at.0,
            url: url.into(),
            title: Some("Shop".into()),
            referrer: referrer.map(str::to_string),
            lang: Some("en-US".into()),
            view_width: Some(1280),
            view_height: Some(720),
            screen_width: Some(1920),
            screen_height: Some(1080),
            ..Default::default()
        })
    }

    fn custom(at: Millis, name: &str, attributes: Value) -> TrackEvent {
        TrackEvent::Custom {
            at: at.0,
            event_name: name.into(),
            attributes: crate::core::json::Json::from(attributes)
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }

    struct Ids(u32);
    impl Ids {
        fn next(&mut self) -> NewSession {
            self.0 += 1;
            NewSession {
                id: format!("js_{}", self.0),
                short_id: format!("{:06}", 100_000 + self.0),
            }
        }
    }

    #[test]
    fn a_visit_from_google_ads_with_utm_and_two_custom_events() {
        let mut t = JourneyTracker::new(JourneyOptions::default(), None);
        let mut ids = Ids(0);
        let c = ctx();
        let landing = "https://shop.example.com/?utm_source=google&utm_medium=cpc&utm_campaign=spring&gclid=Cj0KCQ";
        let a = t.handle_event(
            T0,
            "e1".into(),
            &page(
                T0,
                landing,
                Some("https://www.google.com/search?q=trail+shoes"),
            ),
            &c,
            || ids.next(),
        );
        assert_eq!(a, Applied::Started { ended: None });
        let t1 = T0.plus_seconds(20);
        t.handle_event(
            t1,
            "e2".into(),
            &page(
                t1,
                "https://shop.example.com/search?q=red+trail+shoes",
                Some(landing),
            ),
            &c,
            || ids.next(),
        );
        let t2 = T0.plus_seconds(40);
        t.handle_event(
            t2,
            "e3".into(),
            &custom(
                t2,
                "add_to_cart",
                json!({"sku": "TR-9", "qty": 2, "price": 89.5, "gift": false, "sizes": [42, 43]}),
            ),
            &c,
            || ids.next(),
        );
        let t3 = T0.plus_seconds(60);
        t.handle_event(
            t3,
            "e4".into(),
            &page(t3, "https://shop.example.com/cart#summary", None),
            &c,
            || ids.next(),
        );
        let t4 = T0.plus_seconds(61);
        let a = t.handle_event(
            t4,
            "e5".into(),
            &custom(t4, "checkout_started", json!({"sku": "TR-10"})),
            &c,
            || ids.next(),
        );
        assert_eq!(a, Applied::Continued);

        let s = t.current().unwrap();
        assert_eq!(
            (s.id.as_str(), s.short_id.as_str(), s.session_type.as_str()),
            ("js_1", "100001", "web")
        );
        assert_eq!(
            (s.pageview_count, s.event_count, s.screenview_count),
            (3, 5, 0)
        );
        assert_eq!(s.last_event.event_name, "checkout_started");
        assert_eq!(s.last_event.id, "e5");
        assert_eq!(s.last_event.created_date, t4.to_iso8601());
        assert_eq!(s.duration_in_seconds, 61);
        assert_eq!(s.customer_id.as_deref(), Some("v_7Kq2"));
        assert_eq!(s.customer_id_type.as_deref(), Some("cookie"));
        let r = s.referrer.as_ref().unwrap();
        assert_eq!(
            (r.medium.as_str(), r.name.as_deref(), r.keywords.as_deref()),
            ("search", Some("Google"), Some("trail shoes"))
        );
        assert_eq!(r.hostname.as_deref(), Some("www.google.com"));
        assert_eq!(s.search_terms, ["trail shoes", "red trail shoes"]);
        let m = s.mkt_campaign.as_ref().unwrap();
        assert_eq!(
            (m.source.as_deref(), m.medium.as_deref(), m.name.as_deref()),
            (Some("google"), Some("cpc"), Some("spring"))
        );
        assert_eq!(
            (m.click_id.as_deref(), m.network.as_deref()),
            (Some("Cj0KCQ"), Some("google"))
        );
        let last = s.last_page.as_ref().unwrap();
        assert_eq!(
            (last.pathname.as_deref(), last.fragment.as_deref()),
            (Some("/cart"), Some("summary"))
        );
        assert_eq!(
            s.attributes["sku"],
            json!({"dataType": "string", "value": "TR-10"})
        );
        assert_eq!(
            s.attributes["qty"],
            json!({"dataType": "integer", "value": "2"})
        );
        assert_eq!(
            s.attributes["price"],
            json!({"dataType": "number", "value": "89.5"})
        );
        assert_eq!(
            s.attributes["gift"],
            json!({"dataType": "boolean", "value": "false"})
        );
        assert_eq!(
            s.attribute_lists["sizes"],
            json!({"dataType": "integer", "values": ["42", "43"]})
        );
        assert_eq!(
            (s.browser.family.as_deref(), s.browser.lang.as_deref()),
            (Some("Chrome"), Some("en-US"))
        );
        assert_eq!(
            (s.browser.view_width, s.device.screen_width),
            (Some(1280), Some(1920))
        );
        assert_eq!(s.device.os_family.as_deref(), Some("Linux"));
        assert_eq!(s.ip_address.as_deref(), Some("203.0.113.7"));
        assert_eq!(s.idle_date, t4.plus_seconds(300).to_iso8601());
        assert_eq!(s.away_date, t4.plus_seconds(1800).to_iso8601());
        assert!(!s.authenticated);
        assert_eq!(s.self_uri, "/api/v1/journey/sessions/js_1");
    }

    #[test]
    fn a_list_of_numbers_is_integer_only_when_every_one_is_whole() {
        let mut t = JourneyTracker::new(JourneyOptions::default(), None);
        let mut ids = Ids(0);
        let weights = json!({"kg": [1, 2.5, -3], "g": [0.5, 2], "n": [3, -4], "e": []});
        t.handle_event(
            T0,
            "e1".into(),
            &custom(T0, "weights", weights),
            &ctx(),
            || ids.next(),
        );
        let lists = &t.current().unwrap().attribute_lists;
        assert_eq!(
            lists["kg"],
            json!({"dataType": "number", "values": ["1", "2.5", "-3"]})
        );
        assert_eq!(lists["g"]["dataType"], "number");
        assert_eq!(lists["n"]["dataType"], "integer");
        assert_eq!(lists["e"], json!({"dataType": "string", "values": []}));
    }

    #[test]
    fn a_session_keeps_at_most_200_attribute_names_of_each_kind() {
        let mut t = JourneyTracker::new(JourneyOptions::default(), None);
        let mut ids = Ids(0);
        for batch in 0..10 {
            let names: Map<String, Value> = (0..50)
                .flat_map(|i| {
                    [
                        (format!("s{batch}_{i}"), json!(i)),
                        (format!("l{batch}_{i}"), json!([i])),
                    ]
                })
                .collect();
            t.handle_event(
                T0,
                format!("e{batch}"),
                &custom(T0, "many", Value::Object(names)),
                &ctx(),
                || ids.next(),
            );
        }
        let s = t.current().unwrap();
        assert_eq!(
            (s.attributes.len(), s.attribute_lists.len()),
            (MAX_SESSION_ATTRIBUTES, MAX_SESSION_ATTRIBUTES)
        );
        assert!(!s.attributes.contains_key("s9_0"));
        // A known name still takes its latest value.
        t.handle_event(
            T0,
            "e10".into(),
            &custom(
                T0,
                "again",
                json!({"s0_0": "new", "l0_0": ["x"], "fresh": 1}),
            ),
            &ctx(),
            || ids.next(),
        );
        let s = t.current().unwrap();
        assert_eq!(s.attributes["s0_0"]["value"], "new");
        assert_eq!(s.attribute_lists["l0_0"]["values"], json!(["x"]));
        assert!(!s.attributes.contains_key("fresh"));
    }

    #[test]
    fn idle_and_away_follow_the_last_activity_and_the_options() {
        let options = JourneyOptions {
            idle_after_seconds: 60,
            away_after_seconds: 600,
            ..JourneyOptions::default()
        };
        let mut t = JourneyTracker::new(options, None);
        let mut ids = Ids(0);
        t.handle_event(
            T0,
            "e1".into(),
            &page(T0, "https://shop.example.com/", None),
            &ctx(),
            || ids.next(),
        );
        let s = t.current().unwrap().clone();
        assert_eq!(idle_and_away(&s, T0.plus_seconds(59)), (false, false));
        assert_eq!(idle_and_away(&s, T0.plus_seconds(60)), (true, false));
        assert_eq!(idle_and_away(&s, T0.plus_seconds(600)), (true, true));
        // New activity moves both.
        let later = T0.plus_seconds(500);
        t.handle_event(
            later,
            "e2".into(),
            &custom(later, "scroll_depth", json!({"pct": 75})),
            &ctx(),
            || ids.next(),
        );
        let s = t.current().unwrap();
        assert_eq!(idle_and_away(s, T0.plus_seconds(559)), (false, false));
        assert_eq!(idle_and_away(s, T0.plus_seconds(560)), (true, false));
        assert_eq!(s.idle_date, later.plus_seconds(60).to_iso8601());
        // Out-of-order event times never move the dates backwards.
        t.handle_event(
            T0,
            "e3".into(),
            &custom(T0, "late", json!({})),
            &ctx(),
            || ids.next(),
        );
        assert_eq!(
            t.current().unwrap().last_event.created_date,
            later.to_iso8601()
        );
    }

    #[test]
    fn thirty_minutes_of_silence_roll_over_to_a_new_session() {
        let mut t = JourneyTracker::new(JourneyOptions::default(), None);
        let mut ids = Ids(0);
        let c = ctx();
        t.handle_event(
            T0,
            "e1".into(),
            &page(
                T0,
                "https://shop.example.com/?utm_campaign=a",
                Some("https://t.co/x"),
            ),
            &c,
            || ids.next(),
        );
        assert_eq!(t.poll_timeout(), Some(T0.plus_seconds(1800)));
        // 29:59 later: same session.
        let t1 = T0.plus_seconds(1799);
        assert_eq!(
            t.handle_event(
                t1,
                "e2".into(),
                &page(t1, "https://shop.example.com/a", None),
                &c,
                || ids.next()
            ),
            Applied::Continued
        );
        assert!(!t.handle_timeout(t1.plus_seconds(1799)));
        assert!(t.handle_timeout(t1.plus_seconds(1800)));
        assert_eq!(
            t.current().unwrap().ended_date,
            Some(t1.plus_seconds(1800).to_iso8601())
        );
        // The next visit is a new session with its own referrer and campaign.
        let t2 = t1.plus_seconds(4000);
        let a = t.handle_event(
            t2,
            "e3".into(),
            &page(
                t2,
                "https://shop.example.com/",
                Some("https://duckduckgo.com/"),
            ),
            &c,
            || ids.next(),
        );
        let Applied::Started { ended: Some(old) } = a else {
            panic!("{a:?}")
        };
        assert_eq!((old.id.as_str(), old.pageview_count), ("js_1", 2));
        assert_eq!(old.referrer.as_ref().unwrap().medium, "social");
        let s = t.current().unwrap();
        assert_eq!(
            (s.id.as_str(), s.pageview_count, s.event_count),
            ("js_2", 1, 1)
        );
        assert_eq!(s.referrer.as_ref().unwrap().medium, "search");
        assert_eq!(s.mkt_campaign, None);
        assert_eq!(s.created_date, t2.to_iso8601());

        // An event arriving after the timeout without a timer call also rolls over.
        let t3 = t2.plus_seconds(1800);
        let a = t.handle_event(t3, "e4".into(), &custom(t3, "x", json!({})), &c, || {
            ids.next()
        });
        let Applied::Started { ended: Some(old) } = a else {
            panic!("{a:?}")
        };
        assert_eq!(old.ended_date, Some(t3.to_iso8601()));
        // A session started by a custom event has no page and no referrer yet.
        let s = t.current().unwrap();
        assert_eq!((s.last_page.as_ref(), s.referrer.as_ref()), (None, None));
    }

    #[test]
    fn a_shorter_configured_timeout_and_erasure_end_sessions() {
        let options = JourneyOptions {
            session_timeout_seconds: 60,
            ..JourneyOptions::default()
        };
        let mut t = JourneyTracker::new(options, None);
        let mut ids = Ids(0);
        t.handle_event(
            T0,
            "e1".into(),
            &page(T0, "https://shop.example.com/", None),
            &ctx(),
            || ids.next(),
        );
        let t1 = T0.plus_seconds(61);
        assert!(matches!(
            t.handle_event(
                t1,
                "e2".into(),
                &page(t1, "https://shop.example.com/", None),
                &ctx(),
                || ids.next()
            ),
            Applied::Started { .. }
        ));
        let t2 = t1.plus_seconds(5);
        assert!(t.end(t2));
        assert_eq!(t.current().unwrap().ended_date, Some(t2.to_iso8601()));
        assert!(!t.end(t2), "ending twice is harmless");
        assert_eq!(t.poll_timeout(), None);
    }

    #[test]
    fn authentication_sticks_and_the_page_platform_wins() {
        let mut t = JourneyTracker::new(JourneyOptions::default(), None);
        let mut ids = Ids(0);
        let mut c = ctx();
        t.handle_event(T0, "e1".into(), &custom(T0, "x", json!({})), &c, || {
            ids.next()
        });
        assert!(!t.current().unwrap().authenticated);
        c.authenticated = true;
        t.handle_event(T0, "e2".into(), &custom(T0, "y", json!({})), &c, || {
            ids.next()
        });
        c.authenticated = false;
        let facts = PageFacts {
            url: "https://shop.example.com/".into(),
            platform: Some("macOS".into()),
            mobile: Some(false),
            ..Default::default()
        };
        t.handle_event(T0, "e3".into(), &TrackEvent::PageView(facts), &c, || {
            ids.next()
        });
        let s = t.current().unwrap();
        assert!(s.authenticated);
        assert_eq!(s.device.os_family.as_deref(), Some("macOS"));
        assert_eq!(s.device.is_mobile, Some(false));
        assert_eq!(s.referrer.as_ref().unwrap().medium, "direct");
    }
}
