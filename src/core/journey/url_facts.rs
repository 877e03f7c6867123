//! What a URL says about a visit: its parts (domain, hostname, pathname, query string,
//! fragment), the kind of referrer (search engine, social network, webmail, the site
//! itself, another site, none), search terms (from a search engine's referrer and from
//! the site's own search parameter) and the marketing campaign (`utm_*`, click ids).
//!
//! Pure functions over the `url` crate. Only the server calls them: the SDK sends the
//! raw URLs and never links this module (it is not even compiled for wasm32).

use url::Url;

use crate::core::model::{JourneyCampaign, JourneyPage, Referrer};

/// The parts of an `http(s)` URL, as the journey objects name them. `queryString`
/// has no `?` and `fragment` no `#`; both are null when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub url: String,
    pub domain: String,
    pub hostname: String,
    pub pathname: String,
    pub query_string: Option<String>,
    pub fragment: Option<String>,
}

/// Parses an absolute `http`/`https` URL; anything else is `None`.
pub fn parse_http(text: &str) -> Option<Url> {
    let url = Url::parse(text.trim()).ok()?;
    matches!(url.scheme(), "http" | "https").then_some(())?;
    url.host_str()?;
    Some(url)
}

/// `text` without the user name and password a URL may carry
/// (`https://user:pw@shop.example/` → `https://shop.example/`): they are secrets, never
/// stored. A URL the `url` crate parses and that has them comes back as that crate
/// writes it; other text (also text it refuses) loses whatever sits between `://` and
/// the authority's last `@`; anything else is returned as it is.
pub fn without_credentials(text: &str) -> String {
    if let Ok(mut url) = Url::parse(text.trim()) {
        if url.username().is_empty() && url.password().is_none() {
            return text.to_string();
        }
        if url.set_username("").is_ok() && url.set_password(None).is_ok() {
            return url.to_string();
        }
    }
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let rest = &text[start..];
    let authority = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    match rest[..authority].rfind('@') {
        Some(at) => format!("{}{}", &text[..start], &rest[at + 1..]),
        None => text.to_string(),
    }
}

/// The parts of an `http(s)` URL (`None` for anything else); `url` without credentials.
pub fn url_parts(text: &str) -> Option<UrlParts> {
    let url = parse_http(text)?;
    let hostname = url.host_str().unwrap_or_default().to_string();
    Some(UrlParts {
        url: without_credentials(text.trim()),
        domain: registrable_domain(&hostname),
        pathname: url.path().to_string(),
        query_string: url.query().filter(|q| !q.is_empty()).map(str::to_string),
        fragment: url.fragment().filter(|f| !f.is_empty()).map(str::to_string),
        hostname,
    })
}

/// Second-level labels under which registrations happen (`example.co.uk`). A short
/// list rather than the whole Public Suffix List: it only has to group a site's
/// hosts (`www.`, `shop.`) and name the referrer's domain.
const TWO_LEVEL_SUFFIXES: &[&str] = &[
    "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp",
    "ne.jp", "or.jp", "co.in", "co.kr", "co.za", "com.br", "com.cn", "com.tr", "com.mx", "com.ar",
    "com.sg", "com.hk", "com.tw", "com.ua", "co.il", "com.my", "com.ph",
];

/// The registrable domain of a host: `www.google.co.uk` → `google.co.uk`,
/// `shop.example.com` → `example.com`. IP addresses and single labels stay as given.
pub fn registrable_domain(host: &str) -> String {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return host;
    }
    let labels: Vec<&str> = host.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3 && TWO_LEVEL_SUFFIXES.contains(&labels[n - 2..].join(".").as_str()) {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// A known search engine: its name and the query parameters holding the terms.
fn search_engine(host: &str) -> Option<(&'static str, &'static [&'static str])> {
    let domain = registrable_domain(host);
    let first = domain.split('.').next().unwrap_or_default();
    let sub = |s: &str| host == s || host.ends_with(&format!(".{s}"));
    Some(match first {
        "google" => ("Google", &["q"]),
        "bing" => ("Bing", &["q"]),
        "duckduckgo" => ("DuckDuckGo", &["q"]),
        "yandex" | "ya" => ("Yandex", &["text"]),
        "baidu" => ("Baidu", &["wd", "word"]),
        "ecosia" => ("Ecosia", &["q"]),
        "qwant" => ("Qwant", &["q"]),
        "startpage" => ("Startpage", &["query", "q"]),
        "ask" => ("Ask", &["q"]),
        "sogou" => ("Sogou", &["query"]),
        "yahoo" if sub("search.yahoo.com") || sub("search.yahoo.co.jp") => ("Yahoo!", &["p"]),
        "brave" if sub("search.brave.com") => ("Brave", &["q"]),
        "naver" if sub("search.naver.com") => ("Naver", &["query"]),
        "seznam" if sub("search.seznam.cz") => ("Seznam", &["q"]),
        "aol" if sub("search.aol.com") => ("AOL", &["q"]),
        _ => return None,
    })
}

/// A known social network, by the registrable domain (or short-link host).
fn social_network(host: &str) -> Option<&'static str> {
    let domain = registrable_domain(host);
    Some(match domain.as_str() {
        "facebook.com" | "fb.com" | "fb.me" => "Facebook",
        "instagram.com" => "Instagram",
        "t.co" | "twitter.com" => "Twitter",
        "x.com" => "X",
        "linkedin.com" | "lnkd.in" => "LinkedIn",
        "reddit.com" | "redd.it" => "Reddit",
        "pinterest.com" | "pin.it" => "Pinterest",
        "youtube.com" | "youtu.be" => "YouTube",
        "tiktok.com" => "TikTok",
        "vk.com" => "VKontakte",
        "ok.ru" => "Odnoklassniki",
        "tumblr.com" => "Tumblr",
        "quora.com" => "Quora",
        "ycombinator.com" if host == "news.ycombinator.com" => "Hacker News",
        "threads.net" => "Threads",
        "snapchat.com" => "Snapchat",
        "whatsapp.com" | "wa.me" => "WhatsApp",
        "t.me" | "telegram.org" => "Telegram",
        "weibo.com" => "Weibo",
        "xing.com" => "XING",
        "mastodon.social" => "Mastodon",
        _ => return None,
    })
}

/// A known webmail, by host.
fn webmail(host: &str) -> Option<&'static str> {
    Some(match host {
        "mail.google.com" => "Gmail",
        "outlook.live.com" | "outlook.office.com" | "outlook.office365.com" => "Outlook",
        "mail.yahoo.com" | "mail.yahoo.co.jp" => "Yahoo! Mail",
        "mail.aol.com" => "AOL Mail",
        "mail.proton.me" | "mail.protonmail.com" => "Proton Mail",
        "e.mail.ru" => "Mail.ru",
        "mail.yandex.ru" | "mail.yandex.com" => "Yandex Mail",
        "mail.zoho.com" => "Zoho Mail",
        h if h.starts_with("webmail.") => "Webmail",
        _ => return None,
    })
}

/// Classifies the referrer of a page on `page_host`: `search` (with its engine's name
/// and the terms, when the engine still passes them), `social`, `email`, `internal`
/// (the same site), `referral` (any other site) or `direct` (none, or not an http(s)
/// URL, e.g. `android-app://`: then the URL parts are null).
pub fn classify_referrer(referrer: Option<&str>, page_host: Option<&str>) -> Referrer {
    let Some(parts) = referrer
        .filter(|r| !r.trim().is_empty())
        .and_then(url_parts)
    else {
        return Referrer {
            medium: "direct".into(),
            ..Referrer::default()
        };
    };
    let host = parts.hostname.as_str();
    let same_site = page_host
        .is_some_and(|p| p.eq_ignore_ascii_case(host) || registrable_domain(p) == parts.domain);
    let (medium, name, keywords) = if same_site {
        ("internal", None, None)
    } else if let Some(name) = webmail(host) {
        ("email", Some(name), None)
    } else if let Some((name, params)) = search_engine(host) {
        let terms = parse_http(&parts.url).and_then(|u| query_value(&u, params));
        ("search", Some(name), terms)
    } else if let Some(name) = social_network(host) {
        ("social", Some(name), None)
    } else {
        ("referral", None, None)
    };
    Referrer {
        url: Some(parts.url),
        domain: Some(parts.domain.clone()),
        hostname: Some(parts.hostname.clone()),
        keywords,
        pathname: Some(parts.pathname),
        query_string: parts.query_string,
        fragment: parts.fragment,
        name: name.map(str::to_string),
        medium: medium.into(),
    }
}

/// The first non-empty value of one of `params` (percent- and `+`-decoded, trimmed,
/// inner whitespace collapsed).
fn query_value(url: &Url, params: &[&str]) -> Option<String> {
    params.iter().find_map(|p| {
        url.query_pairs()
            .find(|(k, v)| k == p && !v.trim().is_empty())
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// The search terms of the site's own search: the value of the first of
/// `search_params` in the page's query (`/search?q=red+shoes` → `red shoes`).
pub fn site_search_terms(page_url: &str, search_params: &[String]) -> Option<String> {
    let url = parse_http(page_url)?;
    let params: Vec<&str> = search_params.iter().map(String::as_str).collect();
    query_value(&url, &params)
}

/// Click-id parameters: (parameter, ad network, source and medium when no `utm_*`).
const CLICK_IDS: &[(&str, &str, &str, Option<&str>)] = &[
    ("gclid", "google", "google", Some("cpc")),
    ("gbraid", "google", "google", Some("cpc")),
    ("wbraid", "google", "google", Some("cpc")),
    ("dclid", "google", "google", Some("display")),
    ("msclkid", "microsoft", "bing", Some("cpc")),
    // Facebook adds fbclid to every outbound link, paid or not: no medium from it.
    ("fbclid", "facebook", "facebook", None),
    ("ttclid", "tiktok", "tiktok", Some("cpc")),
    ("li_fat_id", "linkedin", "linkedin", Some("cpc")),
    ("twclid", "twitter", "twitter", Some("cpc")),
    ("yclid", "yandex", "yandex", Some("cpc")),
];

/// The marketing campaign of a landing page: `utm_source`, `utm_medium`,
/// `utm_campaign` (`name`), `utm_term`, `utm_content`, and the first click id with its
/// ad network. A click id without `utm_source` implies its source (and medium for
/// paid clicks). `None` when the URL carries none of these.
pub fn campaign(page_url: &str) -> Option<JourneyCampaign> {
    let url = parse_http(page_url)?;
    let get = |p: &str| query_value(&url, &[p]);
    let mut c = JourneyCampaign {
        content: get("utm_content"),
        medium: get("utm_medium"),
        name: get("utm_campaign"),
        source: get("utm_source"),
        term: get("utm_term"),
        click_id: None,
        network: None,
    };
    if let Some((param, network, source, medium)) =
        CLICK_IDS.iter().find(|(p, ..)| get(p).is_some())
    {
        c.click_id = get(param);
        c.network = Some(network.to_string());
        if c.source.is_none() {
            c.source = Some(source.to_string());
            c.medium = c.medium.or(medium.map(str::to_string));
        }
    }
    (!c.is_empty()).then_some(c)
}

/// The journey's view of a page: URL parts, and the path's segments as breadcrumb.
pub fn journey_page(
    url: &str,
    title: Option<String>,
    keywords: Option<String>,
    lang: Option<String>,
) -> JourneyPage {
    let parts = url_parts(url);
    let breadcrumb = parts
        .as_ref()
        .map(|p| {
            p.pathname
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| s.to_string())
                .collect()
        })
        .unwrap_or_default();
    JourneyPage {
        url: without_credentials(url),
        title: title.filter(|t| !t.is_empty()),
        domain: parts.as_ref().map(|p| p.domain.clone()),
        fragment: parts.as_ref().and_then(|p| p.fragment.clone()),
        hostname: parts.as_ref().map(|p| p.hostname.clone()),
        keywords: keywords.filter(|k| !k.is_empty()),
        lang: lang.filter(|l| !l.is_empty()),
        pathname: parts.as_ref().map(|p| p.pathname.clone()),
        query_string: parts.and_then(|p| p.query_string),
        breadcrumb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: Option<&str> = Some("shop.example.com");

    fn medium(referrer: &str) -> (String, Option<String>, Option<String>) {
        let r = classify_referrer(Some(referrer), SHOP);
        (r.medium, r.name, r.keywords)
    }

    #[test]
    fn url_parts_name_every_piece() {
        let p = url_parts("https://www.shop.example.co.uk:8443/a/b.html?x=1&y=%20z#top").unwrap();
        assert_eq!(p.hostname, "www.shop.example.co.uk");
        assert_eq!(p.domain, "example.co.uk");
        assert_eq!(p.pathname, "/a/b.html");
        assert_eq!(p.query_string.as_deref(), Some("x=1&y=%20z"));
        assert_eq!(p.fragment.as_deref(), Some("top"));
        let bare = url_parts("http://localhost:8080/").unwrap();
        assert_eq!(
            (bare.domain.as_str(), bare.query_string, bare.fragment),
            ("localhost", None, None)
        );
        assert_eq!(url_parts("http://127.0.0.1/x").unwrap().domain, "127.0.0.1");
        for bad in [
            "",
            "shop.example.com/page",
            "ftp://x.example/",
            "javascript:alert(1)",
            "android-app://com.google.android.gm/",
        ] {
            assert_eq!(url_parts(bad), None, "{bad}");
        }
    }

    #[test]
    fn credentials_never_stay_in_a_url() {
        let cases = [
            (
                "https://alice:pw1@shop.example.com/x?q=1#f",
                "https://shop.example.com/x?q=1#f",
            ),
            (
                "https://bob@www.google.com/search?q=a",
                "https://www.google.com/search?q=a",
            ),
            ("https:carol:pw@www.google.com/", "https://www.google.com/"),
            ("ftp://u:p@files.example/a", "ftp://files.example/a"),
            // Refused by the `url` crate (no host), cut as text.
            ("https://dave:pw@/x", "https:///x"),
            ("https://a:b@c@[::1/x", "https://[::1/x"),
            // No credentials: untouched, byte for byte.
            (
                "https://shop.example.com/a@b?c=d@e",
                "https://shop.example.com/a@b?c=d@e",
            ),
            (
                "https://shop.example.com\\x@y/",
                "https://shop.example.com\\x@y/",
            ),
            ("mailto:someone@example.com", "mailto:someone@example.com"),
            ("not a url @ all", "not a url @ all"),
            ("https://bücher.example/ö", "https://bücher.example/ö"),
        ];
        for (text, clean) in cases {
            assert_eq!(without_credentials(text), clean, "{text}");
        }
        let r = classify_referrer(Some("https://eve:secret@www.bing.com/search?q=x"), SHOP);
        assert_eq!(r.url.as_deref(), Some("https://www.bing.com/search?q=x"));
        let page = journey_page("https://eve:secret@shop.example.com/", None, None, None);
        assert_eq!(page.url, "https://shop.example.com/");
    }

    #[test]
    fn search_engines_and_their_terms() {
        let cases = [
            (
                "https://www.google.com/search?q=red+running+shoes&hl=en",
                "Google",
                Some("red running shoes"),
            ),
            ("https://www.google.co.uk/", "Google", None), // Google hides the query today
            (
                "https://www.bing.com/search?q=covisit%20co-browsing&form=QBLH",
                "Bing",
                Some("covisit co-browsing"),
            ),
            (
                "https://duckduckgo.com/?q=privacy+first+cobrowse&t=h_&ia=web",
                "DuckDuckGo",
                Some("privacy first cobrowse"),
            ),
            (
                "https://search.yahoo.com/search?p=winter+jackets&fr=yfp-t",
                "Yahoo!",
                Some("winter jackets"),
            ),
            (
                "https://uk.search.yahoo.com/search?p=boots",
                "Yahoo!",
                Some("boots"),
            ),
            (
                "https://yandex.ru/search/?text=%D0%BA%D1%83%D1%80%D1%82%D0%BA%D0%B0&lr=213",
                "Yandex",
                Some("куртка"),
            ),
            (
                "https://www.baidu.com/s?ie=utf-8&wd=%E9%9E%8B%E5%AD%90",
                "Baidu",
                Some("鞋子"),
            ),
            (
                "https://www.ecosia.org/search?method=index&q=trees",
                "Ecosia",
                Some("trees"),
            ),
            (
                "https://search.brave.com/search?q=brave+search&source=web",
                "Brave",
                Some("brave search"),
            ),
        ];
        for (url, name, terms) in cases {
            let (m, n, k) = medium(url);
            assert_eq!(m, "search", "{url}");
            assert_eq!(n.as_deref(), Some(name), "{url}");
            assert_eq!(k.as_deref(), terms, "{url}");
        }
        // Yahoo's mail and news are not its search.
        assert_eq!(medium("https://mail.yahoo.com/d/folders/1").0, "email");
        assert_eq!(medium("https://news.yahoo.com/story").0, "referral");
    }

    #[test]
    fn social_email_internal_referral_direct() {
        for url in [
            "https://l.facebook.com/l.php?u=https%3A%2F%2Fshop.example.com%2F",
            "https://m.facebook.com/",
            "https://t.co/AbC123xyz",
            "https://www.linkedin.com/feed/",
            "https://out.reddit.com/t3_abc?url=https%3A%2F%2Fshop.example.com",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "https://news.ycombinator.com/item?id=1",
        ] {
            assert_eq!(medium(url).0, "social", "{url}");
        }
        assert_eq!(medium("https://t.co/AbC").1.as_deref(), Some("Twitter"));
        for url in [
            "https://mail.google.com/mail/u/0/",
            "https://outlook.live.com/mail/0/inbox",
            "https://webmail.example.org/?_task=mail",
        ] {
            assert_eq!(medium(url).0, "email", "{url}");
        }
        assert_eq!(medium("https://shop.example.com/cart").0, "internal");
        assert_eq!(medium("https://www.example.com/blog/post").0, "internal");
        let other = classify_referrer(Some("https://blog.partner.org/review?id=9#comments"), SHOP);
        assert_eq!(other.medium, "referral");
        assert_eq!(other.domain.as_deref(), Some("partner.org"));
        assert_eq!(other.hostname.as_deref(), Some("blog.partner.org"));
        assert_eq!(other.pathname.as_deref(), Some("/review"));
        assert_eq!(other.query_string.as_deref(), Some("id=9"));
        assert_eq!(other.fragment.as_deref(), Some("comments"));
        for none in [None, Some(""), Some("android-app://com.google.android.gm/")] {
            let r = classify_referrer(none, SHOP);
            assert_eq!(r.medium, "direct");
            assert_eq!(r.url, None);
        }
    }

    #[test]
    fn site_search_uses_the_configured_parameters() {
        let params = vec!["q".to_string(), "search".to_string()];
        assert_eq!(
            site_search_terms(
                "https://shop.example.com/search?q=red+shoes&page=2",
                &params
            )
            .as_deref(),
            Some("red shoes")
        );
        assert_eq!(
            site_search_terms(
                "https://shop.example.com/?search=%20gift%20%20card%20",
                &params
            )
            .as_deref(),
            Some("gift card")
        );
        assert_eq!(
            site_search_terms("https://shop.example.com/?q=", &params),
            None
        );
        assert_eq!(
            site_search_terms("https://shop.example.com/?query=x", &params),
            None
        );
        assert_eq!(
            site_search_terms("https://shop.example.com/?query=x", &["query".to_string()])
                .as_deref(),
            Some("x")
        );
    }

    #[test]
    fn campaigns_from_utm_and_click_ids() {
        let c = campaign("https://shop.example.com/landing?utm_source=newsletter&utm_medium=email&utm_campaign=spring_sale&utm_term=running+shoes&utm_content=hero_banner").unwrap();
        assert_eq!(c.source.as_deref(), Some("newsletter"));
        assert_eq!(c.medium.as_deref(), Some("email"));
        assert_eq!(c.name.as_deref(), Some("spring_sale"));
        assert_eq!(c.term.as_deref(), Some("running shoes"));
        assert_eq!(c.content.as_deref(), Some("hero_banner"));
        assert_eq!((c.click_id, c.network), (None, None));

        let g = campaign("https://shop.example.com/?gclid=Cj0KCQiA4NWrBhD-ARIsAFCKwWt").unwrap();
        assert_eq!(g.click_id.as_deref(), Some("Cj0KCQiA4NWrBhD-ARIsAFCKwWt"));
        assert_eq!(g.network.as_deref(), Some("google"));
        assert_eq!(
            (g.source.as_deref(), g.medium.as_deref()),
            (Some("google"), Some("cpc"))
        );

        let both = campaign("https://shop.example.com/p?utm_source=google&utm_medium=cpc&utm_campaign=brand&gclid=abc").unwrap();
        assert_eq!(
            (both.name.as_deref(), both.click_id.as_deref()),
            (Some("brand"), Some("abc"))
        );

        let fb = campaign("https://shop.example.com/?fbclid=IwAR2xyz").unwrap();
        assert_eq!(
            (fb.source.as_deref(), fb.medium, fb.network.as_deref()),
            (Some("facebook"), None, Some("facebook"))
        );
        let ms = campaign("https://shop.example.com/?msclkid=5f1e&utm_campaign=x").unwrap();
        assert_eq!(
            (
                ms.source.as_deref(),
                ms.network.as_deref(),
                ms.name.as_deref()
            ),
            (Some("bing"), Some("microsoft"), Some("x"))
        );

        assert_eq!(campaign("https://shop.example.com/product?id=7"), None);
        assert_eq!(campaign("not a url"), None);
    }

    #[test]
    fn pages_get_parts_and_breadcrumbs() {
        let p = journey_page(
            "https://shop.example.com/women/shoes/trail-runner?color=red#reviews",
            Some("Trail Runner".into()),
            Some("shoes, trail".into()),
            Some("en-GB".into()),
        );
        assert_eq!(p.breadcrumb, ["women", "shoes", "trail-runner"]);
        assert_eq!(p.domain.as_deref(), Some("example.com"));
        assert_eq!(p.query_string.as_deref(), Some("color=red"));
        assert_eq!(p.fragment.as_deref(), Some("reviews"));
        assert_eq!(p.lang.as_deref(), Some("en-GB"));
    }
}
