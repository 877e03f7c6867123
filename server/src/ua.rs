//! `browser_name`, `device_name`, `device_type` from a user agent (SPEC.md section 5),
//! with `woothee`, whose rules are compiled in (nothing is fetched at run time).

use covisit::core::model::{Browser, Device, DeviceType};

pub struct UaInfo {
    pub browser_name: Option<String>,
    pub device_name: Option<String>,
    pub device_type: Option<DeviceType>,
}

pub fn parse(user_agent: Option<&str>) -> UaInfo {
    let none = UaInfo {
        browser_name: None,
        device_name: None,
        device_type: None,
    };
    let Some(ua) = user_agent.filter(|u| !u.is_empty()) else {
        return none;
    };
    let Some(r) = woothee::parser::Parser::new().parse(ua) else {
        return none;
    };
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| s.to_string());
    let lower = ua.to_ascii_lowercase();
    let device_type = match r.category {
        "pc" => Some(DeviceType::Desktop),
        "smartphone" | "mobilephone" => {
            if lower.contains("ipad") || (lower.contains("android") && !lower.contains("mobile")) {
                Some(DeviceType::Tablet)
            } else {
                Some(DeviceType::Mobile)
            }
        }
        "appliance" => {
            if lower.contains("playstation") || lower.contains("xbox") || lower.contains("nintendo")
            {
                Some(DeviceType::Console)
            } else if lower.contains("tv") {
                Some(DeviceType::Smarttv)
            } else {
                Some(DeviceType::Embedded)
            }
        }
        _ => None,
    };
    // woothee's `os` names the platform ("iPhone", "Windows 10", "Mac OSX"); the seed's
    // device_name is the device or brand, which the platform name approximates best.
    let device_name = if lower.contains("iphone") {
        Some("iPhone".to_string())
    } else if lower.contains("ipad") {
        Some("iPad".to_string())
    } else {
        known(r.os)
    };
    UaInfo {
        browser_name: known(r.name),
        device_name,
        device_type,
    }
}

/// The journey session's `browser` (family, version) and `device` (category, type,
/// OS family and version, mobile) from the same parse. Page facts fill the rest.
pub fn journey_parts(user_agent: Option<&str>) -> (Browser, Device) {
    let info = parse(user_agent);
    let r = user_agent
        .filter(|u| !u.is_empty())
        .and_then(|ua| woothee::parser::Parser::new().parse(ua));
    let known = |s: &str| (!s.is_empty() && s != "UNKNOWN").then(|| s.to_string());
    let category = info
        .device_type
        .and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_string));
    let mobile = info
        .device_type
        .map(|t| matches!(t, DeviceType::Mobile | DeviceType::Tablet));
    let device_type = match info.device_name.as_deref() {
        Some(name @ ("iPhone" | "iPad")) => Some(name.to_string()),
        _ => info.device_type.map(|_| "Other".to_string()),
    };
    let browser = Browser {
        family: info.browser_name,
        version: r.as_ref().and_then(|r| known(r.version)),
        is_mobile: mobile,
        ..Browser::default()
    };
    let device = Device {
        category,
        device_type,
        is_mobile: mobile,
        os_family: r.as_ref().and_then(|r| known(r.os)),
        os_version: r.as_ref().and_then(|r| known(&r.os_version)),
        ..Device::default()
    };
    (browser, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn desktop_and_mobile() {
        let d = parse(Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"));
        assert_eq!(d.browser_name.as_deref(), Some("Chrome"));
        assert_eq!(d.device_type, Some(DeviceType::Desktop));
        let m = parse(Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"));
        assert_eq!(m.device_type, Some(DeviceType::Mobile));
        assert_eq!(m.device_name.as_deref(), Some("iPhone"));
        assert!(parse(None).browser_name.is_none());
        assert!(parse(Some("garbage")).device_type.is_none());
    }

    #[test]
    fn journey_browser_and_device() {
        let (b, d) = journey_parts(Some("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"));
        assert_eq!(b.family.as_deref(), Some("Chrome"));
        assert_eq!(b.version.as_deref(), Some("120.0.0.0"));
        assert_eq!(d.category.as_deref(), Some("desktop"));
        assert_eq!(d.os_family.as_deref(), Some("Linux"));
        assert_eq!(d.is_mobile, Some(false));
        let (_, d) = journey_parts(Some("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"));
        assert_eq!(
            (d.device_type.as_deref(), d.is_mobile),
            (Some("iPhone"), Some(true))
        );
        let (b, d) = journey_parts(None);
        assert_eq!((b.family, d.category), (None, None));
    }
}
