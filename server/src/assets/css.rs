//! A proxied style sheet's own references, rewritten: every `url()` (quoted or not,
//! however escaped: the text is read by servo's CSS tokenizer, as a browser reads it),
//! `src()`, `@import` string and `image-set()` string is replaced by what `map` makes of
//! it (the proxy's URL for it, or a URL that loads nothing). The rest of the text is
//! copied as it was. The agent's mirror loads such a sheet as a `<link>`, so nothing in
//! it may name another host: the mirror's Content-Security-Policy is the second wall.

use cssparser::{ParseError, Parser, ParserInput, Token};

/// Blocks nested deeper than this are left out (their content is not copied).
const MAX_DEPTH: usize = 64;

/// `text` with each URL it references replaced by `map(url as written, unescaped)`.
pub fn rewrite_css(text: &str, map: &mut dyn FnMut(&str) -> String) -> String {
    let mut input = ParserInput::new(text);
    let mut parser = Parser::new(&mut input);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    walk(&mut parser, &mut out, map, false, 0);
    out
}

fn push_url(out: &mut String, url: &str) {
    out.push_str("url(");
    push_string(out, url);
    out.push(')');
}

fn push_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\a "),
            c if c.is_control() => out.push_str(&format!("\\{:x} ", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

type Done<'i> = Result<(), ParseError<'i, ()>>;

/// Copies the tokens of one block level, rewriting URLs; `image_set`: strings are URLs
/// here (inside `image-set()`).
fn walk(
    p: &mut Parser<'_, '_>,
    out: &mut String,
    map: &mut dyn FnMut(&str) -> String,
    image_set: bool,
    depth: usize,
) {
    let mut after_import = false;
    loop {
        let start = p.position();
        let token = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let mut keep_import = false;
        match &token {
            Token::UnquotedUrl(u) => push_url(out, &map(u)),
            Token::QuotedString(s) if image_set || after_import => push_url(out, &map(s)),
            Token::Function(name)
                if name.eq_ignore_ascii_case("url") || name.eq_ignore_ascii_case("src") =>
            {
                // url("…") (and CSS Values 4's src("…")): the first string is the URL;
                // url modifiers after it are dropped.
                let mut target = String::new();
                let _ = p.parse_nested_block(|p| -> Done<'_> {
                    while let Ok(t) = p.next() {
                        if let Token::QuotedString(s) = t {
                            target = s.to_string();
                            break;
                        }
                    }
                    while p.next().is_ok() {}
                    Ok(())
                });
                push_url(out, &map(&target));
            }
            Token::Function(name) => {
                let set = name.to_ascii_lowercase().ends_with("image-set");
                out.push_str(p.slice_from(start));
                let _ = p.parse_nested_block(|p| -> Done<'_> {
                    if depth < MAX_DEPTH {
                        walk(p, out, map, set, depth + 1);
                    }
                    Ok(())
                });
                out.push(')');
            }
            Token::ParenthesisBlock | Token::SquareBracketBlock | Token::CurlyBracketBlock => {
                let close = match token {
                    Token::ParenthesisBlock => ')',
                    Token::SquareBracketBlock => ']',
                    _ => '}',
                };
                out.push_str(p.slice_from(start));
                let _ = p.parse_nested_block(|p| -> Done<'_> {
                    if depth < MAX_DEPTH {
                        walk(p, out, map, false, depth + 1);
                    }
                    Ok(())
                });
                out.push(close);
            }
            // A bad url or string could swallow what follows differently elsewhere.
            Token::BadUrl(_) | Token::BadString(_) => {}
            Token::AtKeyword(k) if k.eq_ignore_ascii_case("import") => {
                out.push_str(p.slice_from(start));
                keep_import = true;
            }
            Token::WhiteSpace(_) | Token::Comment(_) => {
                out.push_str(p.slice_from(start));
                keep_import = after_import;
            }
            _ => out.push_str(p.slice_from(start)),
        }
        after_import = keep_import;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(css: &str) -> String {
        rewrite_css(css, &mut |u| format!("/p?u={u}"))
    }

    #[test]
    fn every_kind_of_url_reference_is_rewritten() {
        assert_eq!(
            rw("a{background:url(x.png)}"),
            r#"a{background:url("/p?u=x.png")}"#
        );
        assert_eq!(
            rw(r#"@font-face{src:url("f.woff2") format("woff2"),url('g.ttf')}"#),
            r#"@font-face{src:url("/p?u=f.woff2") format("woff2"),url("/p?u=g.ttf")}"#
        );
        assert_eq!(
            rw(r#"@import "a.css" screen;@import url(b.css);"#),
            r#"@import url("/p?u=a.css") screen;@import url("/p?u=b.css");"#
        );
        assert_eq!(
            rw(r#"a{background-image:image-set("a.png" 1x,url(b.png) 2x)}"#),
            r#"a{background-image:image-set(url("/p?u=a.png") 1x,url("/p?u=b.png") 2x)}"#
        );
        assert_eq!(
            rw(r#"a{content:"url(not-a-url)";b:-webkit-image-set('c.png' 1x)}"#),
            r#"a{content:"url(not-a-url)";b:-webkit-image-set(url("/p?u=c.png") 1x)}"#
        );
    }

    #[test]
    fn escaped_url_functions_are_seen_as_a_browser_sees_them() {
        // `\75 rl(` is `url(` to a browser: a text match would let it through.
        assert_eq!(
            rw(r"a{background:\75 rl(http://evil.test/x)}"),
            r#"a{background:url("/p?u=http://evil.test/x")}"#
        );
        assert_eq!(
            rw(r#"a{background:URL( "sp ace.png" )}"#),
            r#"a{background:url("/p?u=sp ace.png")}"#
        );
        assert_eq!(
            rw(r"a{background:url(a\)b.png)}"),
            r#"a{background:url("/p?u=a)b.png")}"#
        );
    }

    #[test]
    fn nested_rules_and_comments_survive() {
        let css = "@media (min-width:1px){/* c */a[x=\"y\"]{color:red;background:url(i.png)}}";
        assert_eq!(
            rw(css),
            "@media (min-width:1px){/* c */a[x=\"y\"]{color:red;background:url(\"/p?u=i.png\")}}"
        );
    }

    #[test]
    fn what_the_map_returns_is_quoted_safely() {
        let out = rewrite_css("a{b:url(x)}", &mut |_| "\"){}*{x:url(evil".to_string());
        assert_eq!(out, r#"a{b:url("\"){}*{x:url(evil")}"#);
    }
}
