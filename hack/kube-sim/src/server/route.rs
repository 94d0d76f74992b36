//! URL routing: what a path addresses, query strings, and the verb a request counts as.

use std::collections::BTreeMap;

use http::Method;

/// What a URL addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Route {
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    ResourceList {
        group: String,
        version: String,
    },
    OpenApiV3Root,
    OpenApiV3 {
        group: String,
        version: String,
    },
    OpenApiV2,
    Resource {
        group: String,
        version: String,
        namespace: Option<String>,
        resource: String,
        name: Option<String>,
        subresource: Option<String>,
    },
    Unknown,
}

impl Route {
    pub(super) fn parse(path: &str) -> Route {
        let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|s| !s.is_empty()).collect();
        let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
            ["version"] => return Route::Version,
            ["healthz" | "livez" | "readyz", ..] => return Route::Health,
            ["api"] => return Route::CoreVersions,
            ["apis"] => return Route::Groups,
            ["apis", g] => return Route::Group(g.to_string()),
            ["openapi", "v2"] => return Route::OpenApiV2,
            ["openapi", "v3"] => return Route::OpenApiV3Root,
            ["openapi", "v3", "api", v] => {
                return Route::OpenApiV3 { group: String::new(), version: v.to_string() };
            }
            ["openapi", "v3", "apis", g, v] => {
                return Route::OpenApiV3 { group: g.to_string(), version: v.to_string() };
            }
            ["api", v, rest @ ..] => ("", v, rest),
            ["apis", g, v, rest @ ..] => (g, v, rest),
            _ => return Route::Unknown,
        };
        let res = |ns: Option<&str>, r: &str, name: Option<&str>, sub: Option<&str>| Route::Resource {
            group: group.to_string(),
            version: version.to_string(),
            namespace: ns.map(String::from),
            resource: r.to_string(),
            name: name.map(String::from),
            subresource: sub.map(String::from),
        };
        match rest {
            [] => Route::ResourceList { group: group.to_string(), version: version.to_string() },
            // `/api/v1/namespaces/{name}` is the Namespace itself, not a namespace scope.
            ["namespaces"] => res(None, "namespaces", None, None),
            ["namespaces", n] => res(None, "namespaces", Some(n), None),
            ["namespaces", n, sub @ ("status" | "finalize")] => res(None, "namespaces", Some(n), Some(sub)),
            ["namespaces", ns, r] => res(Some(ns), r, None, None),
            ["namespaces", ns, r, n] => res(Some(ns), r, Some(n), None),
            ["namespaces", ns, r, n, sub] => res(Some(ns), r, Some(n), Some(sub)),
            [r] => res(None, r, None, None),
            [r, n] => res(None, r, Some(n), None),
            [r, n, sub] => res(None, r, Some(n), Some(sub)),
            _ => Route::Unknown,
        }
    }
}

pub(super) fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex =
            bytes.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn verb_of(method: &Method, route: &Route, query: &str) -> String {
    let Route::Resource { name, .. } = route else { return "get".into() };
    let q = query_map(query);
    let watch = q.get("watch").is_some_and(|v| v == "true" || v == "1");
    match (method.as_str(), name.is_some()) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            Route::parse("/api/v1/namespaces/default/services/web/status"),
            Route::Resource {
                group: String::new(),
                version: "v1".into(),
                namespace: Some("default".into()),
                resource: "services".into(),
                name: Some("web".into()),
                subresource: Some("status".into()),
            }
        );
        assert!(
            matches!(Route::parse("/api/v1/namespaces/default"), Route::Resource { ref resource, ref name, namespace: None, .. } if resource == "namespaces" && name.as_deref() == Some("default"))
        );
        assert!(
            matches!(Route::parse("/apis/ferrolb.io/v1alpha1/loadbalancerippools"), Route::Resource { ref group, name: None, .. } if group == "ferrolb.io")
        );
        assert_eq!(
            Route::parse("/apis/ferrolb.io/v1alpha1"),
            Route::ResourceList { group: "ferrolb.io".into(), version: "v1alpha1".into() }
        );
        assert_eq!(Route::parse("/apis"), Route::Groups);
    }

    #[test]
    fn query_decoding() {
        let q = query_map("labelSelector=app%3Dweb%2Ctier+in+(a)&watch=1");
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
    }
}
