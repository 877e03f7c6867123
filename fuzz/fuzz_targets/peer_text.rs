//! Text a peer sends that the core reads by hand rather than as JSON: ISO-8601 times
//! (`Millis::parse_iso8601`, e.g. a REST `interval`), an agent's visitor search
//! (`derive::visitor_matches`), identities (`derive`'s name and email guesses) and
//! page URLs (`url_facts`). Nothing may panic, and a time that parses must print and
//! parse back to itself.
#![no_main]

use covisit::core::derive;
use covisit::core::journey::url_facts;
use covisit::core::model::Visitor;
use covisit::core::Millis;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(at) = Millis::parse_iso8601(text) {
        assert_eq!(Millis::parse_iso8601(&at.to_iso8601()), Some(at), "{text}");
    }
    let mut middle = text.len() / 2;
    while !text.is_char_boundary(middle) {
        middle -= 1;
    }
    let (left, right) = text.split_at(middle);
    let identities = vec![left.to_string(), right.to_string()];
    let names = derive::Names::of(None, &identities);
    let nickname = names.nickname("v1");
    let derive::Names { name, email } = names;
    let visitor = Visitor {
        added_at: String::new(),
        api_key: "pk_demo".into(),
        browser_name: None,
        call_name: Some(right.to_string()),
        device_name: None,
        device_type: None,
        email,
        identities,
        integration: None,
        ip_address: String::new(),
        is_in_session: false,
        is_online: true,
        is_supported: true,
        missing_capabilities: Vec::new(),
        is_waiting_for_call: false,
        js_configuration: true,
        last_seen_at: String::new(),
        last_url: None,
        location_city: None,
        location_country_name: None,
        location_country: None,
        lookup_code: Some("0042".into()),
        nickname,
        name,
        short_id: "v1".into(),
        tags: vec![left.to_string()],
        unique_id: Some(left.to_string()),
        watch_link: String::new(),
        sdk: String::new(),
    };
    let _ = derive::visitor_matches(&visitor, text);
    let _ = derive::visitor_matches(&visitor, left);
    let _ = url_facts::url_parts(text);
    let _ = url_facts::without_credentials(text);
    let host = url_facts::url_parts(right).map(|p| p.hostname);
    let _ = url_facts::classify_referrer(Some(left), host.as_deref());
    let _ = url_facts::campaign(text);
    let _ = url_facts::site_search_terms(text, &["q".into(), left.to_string()]);
    let _ = url_facts::registrable_domain(text);
});
