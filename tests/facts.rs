//! Facts that more than one file states, checked against their one definition in Rust:
//! the error codes (`core::codes`) against PROTOCOL.md and the codes the SDK's JS throws;
//! the remote refusal reasons (`protocol::RemoteRefusal`) against what the page's capture
//! returns and the console's texts; the SDK's events (`client::EVENT_NAMES`) against its
//! TypeScript and the README; the SDK object's methods against the script tag's commands;
//! the config's keys (`config::config_keys`) against its TypeScript and the README.
//! Each failure says which file to change. (The wire types' TypeScript is checked by
//! `src/core/wire_ts.rs`.)

use std::collections::BTreeSet;
use std::path::Path;

use covisit::core::client::EVENT_NAMES;
use covisit::core::codes::ErrorCode;
use covisit::core::config::config_keys;
use covisit::core::protocol::RemoteRefusal;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The text between `start` and the first `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str, what: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{what}: `{start}` not found"))
        + start.len();
    let len = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("{what}: no `{end}` after `{start}`"));
    &text[from..from + len]
}

/// Every `'word'` or `"word"` of lowercase letters and `_` that follows `prefix`.
fn quoted_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        let rest = &text[i + prefix.len()..];
        let Some(quote) = rest.chars().next().filter(|c| *c == '\'' || *c == '"') else {
            continue;
        };
        let word: String = rest[1..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        if rest[1 + word.len()..].starts_with(quote) && !word.is_empty() {
            found.insert(word);
        }
    }
    found
}

fn diff(what: &str, left: (&str, &BTreeSet<String>), right: (&str, &BTreeSet<String>)) {
    let only_left: Vec<_> = left.1.difference(right.1).collect();
    let only_right: Vec<_> = right.1.difference(left.1).collect();
    assert!(
        only_left.is_empty() && only_right.is_empty(),
        "{what} differ:\n  only in {}: {only_left:?}\n  only in {}: {only_right:?}",
        left.0,
        right.0,
    );
}

fn registry() -> BTreeSet<String> {
    ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_string())
        .collect()
}

#[test]
fn protocol_md_lists_exactly_the_registered_error_codes() {
    let doc = read("docs/PROTOCOL.md");
    let section = between(&doc, "\n## Error codes\n", "\n## ", "docs/PROTOCOL.md");
    let mut listed = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap_or_default();
        for code in first_cell.split('`').skip(1).step_by(2) {
            listed.insert(code.to_string());
        }
    }
    diff(
        "the error codes",
        ("src/core/codes.rs (ErrorCode)", &registry()),
        ("docs/PROTOCOL.md (## Error codes tables)", &listed),
    );
}

#[test]
fn the_sdk_js_throws_only_registered_codes() {
    let registry = registry();
    for file in [
        "src/js/index.js",
        "src/js/covisit.js",
        "src/web/glue.js",
        "src/web/capture.js",
        "src/web/draw.js",
        "src/web/mirror.js",
        "src/web/call.js",
    ] {
        for code in quoted_after(&read(file), "code: ") {
            assert!(
                registry.contains(&code),
                "{file} uses the error code `{code}`, which src/core/codes.rs does not have \
                 (add it there and to docs/PROTOCOL.md, or use one that is there)"
            );
        }
    }
}

#[test]
fn remote_refusals_are_the_ones_the_page_returns_and_the_console_explains() {
    let reasons: BTreeSet<String> = RemoteRefusal::ALL
        .iter()
        .map(|r| r.as_str().to_string())
        .collect();
    for file in ["src/web/mirror.js", "src/web/capture.js"] {
        for returned in quoted_after(&read(file), "return ") {
            assert!(
                reasons.contains(&returned),
                "{file} returns the refusal `{returned}`, which RemoteRefusal \
                 (src/core/protocol.rs) does not have: the SDK would send `failed` instead"
            );
        }
    }
    let console = read("www/agent/console.js");
    let table = between(
        &console,
        "const REFUSAL_TEXT = {",
        "};",
        "www/agent/console.js",
    );
    let explained: BTreeSet<String> = table
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(key, _)| key.trim().to_string())
        .collect();
    diff(
        "the remote refusal reasons",
        ("src/core/protocol.rs (RemoteRefusal)", &reasons),
        ("www/agent/console.js (REFUSAL_TEXT)", &explained),
    );
    let doc = read("docs/PROTOCOL.md");
    let row = between(&doc, "| `remote_applied` |", "\n", "docs/PROTOCOL.md");
    for reason in &reasons {
        assert!(
            row.contains(&format!("`{reason}`")),
            "docs/PROTOCOL.md's remote_applied row does not list `{reason}`"
        );
    }
}

#[test]
fn the_sdk_events_are_one_list() {
    let events: BTreeSet<String> = EVENT_NAMES.iter().map(|e| e.to_string()).collect();
    let ts = read("src/web/mod.rs");
    let interface = between(
        &ts,
        "export interface CovisitEvents {",
        "\n}",
        "src/web/mod.rs",
    );
    let typed: BTreeSet<String> = interface
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("/**") && !l.starts_with('*'))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect();
    diff(
        "the SDK's events",
        ("src/core/client.rs (EVENT_NAMES)", &events),
        ("src/web/mod.rs (interface CovisitEvents)", &typed),
    );
    let readme = read("README.md");
    let sentence = between(
        &readme,
        "`cv.on(event, fn)` subscribes to",
        ". When",
        "README.md",
    );
    for event in &events {
        assert!(
            sentence.contains(&format!("`{event}`")),
            "README.md's list of events lacks `{event}`"
        );
    }
}

#[test]
fn the_script_tag_has_a_command_for_every_method_of_the_sdk_object() {
    // The methods of `Covisit` as JS sees them: each `pub fn` of the exported impl,
    // under its `js_name` when it has one.
    let rust = read("src/web/session.rs");
    let block = between(
        &rust,
        "#[wasm_bindgen]\nimpl Covisit {",
        "\n}\n",
        "src/web/session.rs",
    );
    let mut methods = BTreeSet::new();
    let mut js_name = None;
    for line in block.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#[wasm_bindgen(js_name = ") {
            js_name = rest.split([',', ')']).next().map(str::to_string);
        } else if let Some(rest) = line.strip_prefix("pub fn ") {
            let name = rest.split('(').next().unwrap_or_default().to_string();
            methods.insert(js_name.take().unwrap_or(name));
        } else if !line.starts_with("#[") && !line.starts_with("///") {
            js_name = None;
        }
    }
    // `callApi` is the calls' methods, which index.js defines under their names.
    assert!(
        methods.remove("callApi"),
        "src/web/session.rs: the calls' `callApi` export is gone"
    );
    let index = read("src/js/index.js");
    let calls = between(&index, "const CALL_METHODS = [", "];", "src/js/index.js");
    methods.extend(
        calls
            .split(',')
            .map(|s| s.trim().trim_matches('\'').to_string())
            .filter(|s| !s.is_empty()),
    );
    let glue = read("src/js/covisit.js");
    let list = between(&glue, "var METHODS = [", "];", "src/js/covisit.js");
    let mut commands: BTreeSet<String> = list
        .split(',')
        .map(|s| s.trim().trim_matches('\'').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    // `getState`/`getLookupCode` call back with `state()`/`lookupCode()` (CALLBACKS).
    let callbacks = between(&glue, "var CALLBACKS = {", "};", "src/js/covisit.js");
    for (command, method) in [("getState", "state"), ("getLookupCode", "lookupCode")] {
        assert!(
            callbacks.contains(&format!("{command}: function (cv, cb) {{"))
                && callbacks.contains(&format!("cv.{method}()")),
            "src/js/covisit.js: `{command}` no longer calls `{method}()`"
        );
        commands.insert(method.to_string());
    }
    diff(
        "the SDK object's methods",
        ("src/web/session.rs (impl Covisit)", &methods),
        ("src/js/covisit.js (METHODS, CALLBACKS)", &commands),
    );
}

#[test]
fn the_config_keys_are_one_list() {
    let keys: BTreeSet<String> = config_keys().map(str::to_string).collect();
    let ts = read("src/web/mod.rs");
    let interface = between(
        &ts,
        "export interface CovisitConfig {",
        "\n}",
        "src/web/mod.rs",
    );
    let typed: BTreeSet<String> = interface
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("/**") && !l.starts_with('*'))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().trim_end_matches('?').to_string())
        .collect();
    diff(
        "the config keys",
        ("src/core/config.rs (config_keys)", &keys),
        ("src/web/mod.rs (interface CovisitConfig)", &typed),
    );
    let readme = read("README.md");
    let table = between(&readme, "### Configuration\n", "\n\n", "README.md");
    let mut documented = BTreeSet::new();
    for row in table.lines().filter(|l| l.starts_with("| `")) {
        let first_cell = row.split('|').nth(1).unwrap_or_default();
        for key in first_cell.split('`').skip(1).step_by(2) {
            documented.insert(key.to_string());
        }
    }
    diff(
        "the config keys",
        ("src/core/config.rs (config_keys)", &keys),
        ("README.md (### Configuration)", &documented),
    );
}
