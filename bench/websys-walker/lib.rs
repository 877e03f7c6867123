//! The snapshot walk of `src/web/mirror.js`, written in Rust against web-sys: one
//! boundary crossing per node, attribute and string. Built only to measure it against
//! the JS walker (docs/MIRROR.md); it is not part of the SDK. Same output format (an
//! `N` group of tuples, parents by distance), same skips and masking checks, no slicing.

use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlInputElement, Node, Url};

const MASK_INPUT: &str =
    "input[type=password i],[autocomplete*=\"cc-\" i],[autocomplete=\"one-time-code\" i]";
const MASK_BOX: &str = ".covisit-mask,[data-covisit-mask]";
const SKIP: [&str; 8] = [
    "script",
    "noscript",
    "template",
    "base",
    "object",
    "embed",
    "covisit-ui",
    "covisit-pointer",
];
const URLS: [&str; 5] = ["href", "src", "action", "poster", "xlink:href"];

fn quote(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The snapshot of the document as one batch string (the JSON records of mirror.js).
#[wasm_bindgen]
pub fn snapshot(masked: &str) -> String {
    let Some(doc) = web_sys::window().and_then(|w| w.document()) else {
        return String::new();
    };
    let mask = if masked.len() > 2 {
        format!(
            "{MASK_BOX},{}",
            &masked[2..masked.len() - 2].replace("\",\"", ",")
        )
    } else {
        MASK_BOX.to_string()
    };
    let base = doc.base_uri().ok().flatten().unwrap_or_default();
    let mut out = String::from("[[\"N\",1,0");
    let mut next: u32 = 1;
    let mut stack: Vec<(Node, u32)> = Vec::new();
    let mut c = doc.last_child();
    while let Some(x) = c {
        c = x.previous_sibling();
        stack.push((x, 0));
    }
    while let Some((n, p)) = stack.pop() {
        let id = next;
        match n.node_type() {
            Node::TEXT_NODE => {
                out.push_str(&format!(",[{},0,", id - p));
                quote(&mut out, &n.node_value().unwrap_or_default());
                out.push(']');
                next += 1;
            }
            Node::ELEMENT_NODE => {
                let el: Element = n.unchecked_into();
                let tag = el.local_name();
                if SKIP.contains(&tag.as_str()) || el.has_attribute("data-covisit-ignore") {
                    continue;
                }
                let boxed =
                    el.matches(MASK_INPUT).unwrap_or(true) || el.matches(&mask).unwrap_or(true);
                out.push_str(&format!(",[{},", id - p));
                quote(&mut out, &tag);
                out.push_str(",{");
                let attrs = el.attributes();
                let mut first = true;
                for i in 0..attrs.length() {
                    let Some(a) = attrs.item(i) else { continue };
                    let name = a.name();
                    if name.starts_with("on") {
                        continue;
                    }
                    let mut value = a.value();
                    if URLS.contains(&name.as_str()) {
                        match Url::new_with_base(&value, &base) {
                            Ok(u) if u.protocol() == "javascript:" => continue,
                            Ok(u) => value = u.href(),
                            Err(_) => {}
                        }
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    quote(&mut out, &name);
                    out.push(':');
                    quote(&mut out, &value);
                }
                if let Some(input) = el.dyn_ref::<HtmlInputElement>() {
                    let v = input.value();
                    out.push_str(if first { "\"value\":" } else { ",\"value\":" });
                    let shown = if boxed {
                        "\u{2022}".repeat(v.chars().count())
                    } else {
                        v
                    };
                    quote(&mut out, &shown);
                }
                out.push_str("}]");
                next += 1;
                if boxed {
                    continue;
                }
                let mut c = el.last_child();
                while let Some(x) = c {
                    c = x.previous_sibling();
                    stack.push((x, id));
                }
            }
            _ => {}
        }
    }
    out.push_str("]]");
    out
}
