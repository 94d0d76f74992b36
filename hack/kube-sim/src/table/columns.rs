//! The columns of the built-in kinds kube-sim serves, computed from whole objects the way
//! kubernetes/pkg/printers does.

use jiff::Timestamp;
use serde_json::Value;

use crate::table::{CREATION_DESCRIPTION, CellFn, Column, age_of, name_column, text};

fn array<'a>(obj: &'a Value, pointer: &str) -> &'a [Value] {
    obj.pointer(pointer).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

fn or_none(s: String) -> Value {
    Value::from(if s.is_empty() { "<none>".to_owned() } else { s })
}

fn builtin_name() -> Column {
    name_column()
}

fn builtin_age() -> Column {
    Column::computed("Age", "string", CREATION_DESCRIPTION, 0, |o, now| {
        age_of(o, "/metadata/creationTimestamp", now)
    })
}

/// The columns kubectl shows for the built-in kinds kube-sim serves, as the apiserver's printers
/// compute them (`Wide` columns have priority 1); `None` for any other kind, which gets
/// [`default_columns`](super::default_columns) (or its CRD's printer columns).
pub fn builtin_columns(group: &str, kind: &str) -> Option<Vec<Column>> {
    let columns = match (group, kind) {
        ("", "Service") => service_columns(),
        ("", "Node") => node_columns(),
        ("", "Namespace") => vec![
            builtin_name(),
            Column::computed("Status", "string", "The status of the namespace", 0, |o, _| {
                Value::from(text(o, "/status/phase"))
            }),
            builtin_age(),
        ],
        ("coordination.k8s.io", "Lease") => vec![
            builtin_name(),
            Column::computed("Holder", "string", "The holder of the lease", 0, |o, _| {
                Value::from(text(o, "/spec/holderIdentity"))
            }),
            builtin_age(),
        ],
        ("", "Endpoints") => vec![
            builtin_name(),
            Column::computed("Endpoints", "string", "Endpoints of the service", 0, |o, _| {
                Value::from(format_endpoints(o))
            }),
            builtin_age(),
        ],
        ("discovery.k8s.io", "EndpointSlice") => endpoint_slice_columns(),
        ("", "Event") => event_columns(false),
        ("events.k8s.io", "Event") => event_columns(true),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => vec![
            builtin_name(),
            Column::computed("Created At", "date", CREATION_DESCRIPTION, 0, |o, _| {
                // The default table convertor prints the RFC 3339 time itself, not an age.
                match text(o, "/metadata/creationTimestamp").parse::<Timestamp>() {
                    Ok(ts) => Value::from(ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
                    Err(_) => Value::from("0001-01-01T00:00:00Z"),
                }
            }),
        ],
        _ => return None,
    };
    Some(columns)
}

fn service_columns() -> Vec<Column> {
    vec![
        builtin_name(),
        Column::computed("Type", "string", "type determines how the Service is exposed.", 0, |o, _| {
            Value::from(service_type(o))
        }),
        Column::computed("Cluster-IP", "string", "clusterIP is the IP address of the service.", 0, |o, _| {
            let ip = array(o, "/spec/clusterIPs")
                .first()
                .and_then(Value::as_str)
                .unwrap_or(text(o, "/spec/clusterIP"));
            or_none(ip.to_owned())
        }),
        Column::computed(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
            0,
            |o, _| Value::from(service_external_ip(o)),
        ),
        Column::computed(
            "Port(s)",
            "string",
            "The list of ports that are exposed by this service.",
            0,
            |o, _| {
                let ports: Vec<String> = array(o, "/spec/ports")
                    .iter()
                    .map(|p| {
                        let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                        match p.get("nodePort").and_then(Value::as_i64).filter(|n| *n > 0) {
                            Some(node_port) => format!("{port}:{node_port}/{proto}"),
                            None => format!("{port}/{proto}"),
                        }
                    })
                    .collect();
                or_none(ports.join(","))
            },
        ),
        builtin_age(),
        Column::computed(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
            1,
            |o, _| or_none(format_labels(o.pointer("/spec/selector"))),
        ),
    ]
}

fn service_type(o: &Value) -> &str {
    match text(o, "/spec/type") {
        "" => "ClusterIP",
        t => t,
    }
}

fn strings_at(o: &Value, pointer: &str) -> Vec<String> {
    array(o, pointer).iter().filter_map(Value::as_str).map(str::to_owned).collect()
}

fn service_external_ip(o: &Value) -> String {
    let external = strings_at(o, "/spec/externalIPs");
    match service_type(o) {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".to_owned()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            // A sorted set of ingress IPs (or hostnames), then the external IPs.
            let mut ingress: Vec<String> = array(o, "/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| {
                    let ip = i.get("ip").and_then(Value::as_str).filter(|s| !s.is_empty());
                    ip.or_else(|| i.get("hostname").and_then(Value::as_str).filter(|s| !s.is_empty()))
                })
                .map(str::to_owned)
                .collect();
            ingress.sort();
            ingress.dedup();
            ingress.extend(external);
            if ingress.is_empty() { "<pending>".to_owned() } else { ingress.join(",") }
        }
        "ExternalName" => text(o, "/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

/// `labels.FormatLabels`: sorted `k=v` pairs.
fn format_labels(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else { return String::new() };
    let mut pairs: Vec<String> =
        m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect();
    pairs.sort();
    pairs.join(",")
}

fn node_columns() -> Vec<Column> {
    vec![
        builtin_name(),
        Column::computed("Status", "string", "The status of the node", 0, |o, _| Value::from(node_status(o))),
        Column::computed("Roles", "string", "The roles of the node", 0, |o, _| {
            or_none(node_roles(o).join(","))
        }),
        builtin_age(),
        Column::computed("Version", "string", "Kubelet Version reported by the node.", 0, |o, _| {
            Value::from(text(o, "/status/nodeInfo/kubeletVersion"))
        }),
        Column::computed("Internal-IP", "string", "List of addresses reachable to the node.", 1, |o, _| {
            Value::from(node_address(o, "InternalIP"))
        }),
        Column::computed("External-IP", "string", "List of addresses reachable to the node.", 1, |o, _| {
            Value::from(node_address(o, "ExternalIP"))
        }),
        Column::computed("OS-Image", "string", "OS Image reported by the node.", 1, |o, _| {
            node_info(o, "osImage")
        }),
        Column::computed("Kernel-Version", "string", "Kernel Version reported by the node.", 1, |o, _| {
            node_info(o, "kernelVersion")
        }),
        Column::computed(
            "Container-Runtime",
            "string",
            "Container runtime version reported by the node.",
            1,
            |o, _| node_info(o, "containerRuntimeVersion"),
        ),
    ]
}

fn node_address(o: &Value, kind: &str) -> String {
    array(o, "/status/addresses")
        .iter()
        .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
        .and_then(|a| a.get("address").and_then(Value::as_str))
        .unwrap_or("<none>")
        .to_owned()
}

fn node_info(o: &Value, field: &str) -> Value {
    match text(o, &format!("/status/nodeInfo/{field}")) {
        "" => Value::from("<unknown>"),
        s => Value::from(s),
    }
}

fn node_status(o: &Value) -> String {
    // Only the Ready condition is shown (its last occurrence wins, as in a Go map).
    let ready = array(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"));
    let mut status = vec![match ready {
        Some(c) if c.get("status").and_then(Value::as_str) == Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    status.join(",")
}

fn node_roles(o: &Value) -> Vec<String> {
    let mut roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
                    Some(role) if !role.is_empty() => Some(role.to_owned()),
                    _ if k == "kubernetes.io/role" => v.as_str().filter(|s| !s.is_empty()).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    roles
}

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn format_endpoints(o: &Value) -> String {
    let subsets = array(o, "/subsets");
    if subsets.is_empty() {
        return "<none>".to_owned();
    }
    const MAX: usize = 3;
    let mut list = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = ss.get("addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let ips = addresses.iter().map(|a| a.get("ip").and_then(Value::as_str).unwrap_or_default());
        let ports = ss.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        if ports.is_empty() {
            count += addresses.len();
            for ip in ips.clone() {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(ip.to_owned());
            }
            continue;
        }
        for port in ports {
            let port = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            count += addresses.len();
            for ip in ips.clone() {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") });
            }
        }
    }
    let joined = list.join(",");
    if more { format!("{joined} + {} more...", count - MAX) } else { joined }
}

fn endpoint_slice_columns() -> Vec<Column> {
    vec![
        builtin_name(),
        Column::computed(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
            0,
            |o, _| Value::from(text(o, "/addressType")),
        ),
        Column::computed(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
            0,
            |o, _| {
                let ports: Vec<String> = array(o, "/ports")
                    .iter()
                    .map(|p| {
                        match (p.get("port").and_then(Value::as_i64), p.get("name").and_then(Value::as_str)) {
                            (Some(n), _) => n.to_string(),
                            (None, Some(name)) => name.to_owned(),
                            (None, None) => "*".to_owned(),
                        }
                    })
                    .collect();
                Value::from(list_with_more(ports))
            },
        ),
        Column::computed(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
            0,
            |o, _| {
                let addresses: Vec<String> = array(o, "/endpoints")
                    .iter()
                    .flat_map(|e| {
                        e.get("addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
                    })
                    .map(|a| a.as_str().unwrap_or_default().to_owned())
                    .collect();
                Value::from(list_with_more(addresses))
            },
        ),
        builtin_age(),
    ]
}

/// `listWithMoreString` of the EndpointSlice printer.
fn list_with_more(items: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = items.len();
    let joined = items.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_owned()
    } else {
        joined
    }
}

/// Reads core/v1 and events.k8s.io/v1 Events alike: the latter names the same fields differently.
struct EventView<'a> {
    o: &'a Value,
    v1: bool,
}

impl EventView<'_> {
    fn field(&self, core: &str, events: &str) -> &str {
        text(self.o, if self.v1 { events } else { core })
    }

    fn first_seen(&self, now: Timestamp) -> Value {
        let first = if self.v1 { "/deprecatedFirstTimestamp" } else { "/firstTimestamp" };
        if text(self.o, first).is_empty() {
            age_of(self.o, "/eventTime", now)
        } else {
            age_of(self.o, first, now)
        }
    }

    fn last_seen(&self, now: Timestamp) -> Value {
        if self.o.get("series").is_some_and(Value::is_object) {
            return age_of(self.o, "/series/lastObservedTime", now);
        }
        let last = if self.v1 { "/deprecatedLastTimestamp" } else { "/lastTimestamp" };
        if text(self.o, last).is_empty() { self.first_seen(now) } else { age_of(self.o, last, now) }
    }

    fn count(&self) -> i64 {
        if let Some(n) = self.o.pointer("/series/count").and_then(Value::as_i64) {
            return n;
        }
        let count = self
            .o
            .pointer(if self.v1 { "/deprecatedCount" } else { "/count" })
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if count == 0 { 1 } else { count }
    }

    fn object(&self) -> String {
        let base = if self.v1 { "/regarding" } else { "/involvedObject" };
        let kind = text(self.o, &format!("{base}/kind")).to_lowercase();
        match text(self.o, &format!("{base}/name")) {
            "" => kind,
            name => format!("{kind}/{name}"),
        }
    }

    fn source(&self) -> String {
        let component = match self.field("/source/component", "/deprecatedSource/component") {
            "" => text(self.o, "/reportingController"),
            c => c,
        };
        let instance = match self.field("/source/host", "/deprecatedSource/host") {
            "" => text(self.o, "/reportingInstance"),
            h => h,
        };
        if instance.is_empty() { component.to_owned() } else { format!("{component}, {instance}") }
    }
}

fn event_columns(v1: bool) -> Vec<Column> {
    // fn pointers cannot capture `v1`, so each column exists in both flavours.
    let pick = |core: CellFn, events: CellFn| if v1 { events } else { core };
    vec![
        Column::computed(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
            0,
            pick(
                |o, now| EventView { o, v1: false }.last_seen(now),
                |o, now| EventView { o, v1: true }.last_seen(now),
            ),
        ),
        Column::computed(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
            0,
            |o, _| Value::from(text(o, "/type")),
        ),
        Column::computed(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            0,
            |o, _| Value::from(text(o, "/reason")),
        ),
        Column::computed(
            "Object",
            "string",
            "The object that this event is about.",
            0,
            pick(
                |o, _| Value::from(EventView { o, v1: false }.object()),
                |o, _| Value::from(EventView { o, v1: true }.object()),
            ),
        ),
        Column::computed(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
            1,
            pick(
                |o, _| Value::from(text(o, "/involvedObject/fieldPath")),
                |o, _| Value::from(text(o, "/regarding/fieldPath")),
            ),
        ),
        Column::computed(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
            1,
            pick(
                |o, _| Value::from(EventView { o, v1: false }.source()),
                |o, _| Value::from(EventView { o, v1: true }.source()),
            ),
        ),
        Column::computed(
            "Message",
            "string",
            "A human-readable description of the status of this operation.",
            0,
            pick(|o, _| Value::from(text(o, "/message").trim()), |o, _| Value::from(text(o, "/note").trim())),
        ),
        Column::computed(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            1,
            pick(
                |o, now| EventView { o, v1: false }.first_seen(now),
                |o, now| EventView { o, v1: true }.first_seen(now),
            ),
        ),
        Column::computed(
            "Count",
            "string",
            "The number of times this event has occurred.",
            1,
            pick(
                |o, _| Value::from(EventView { o, v1: false }.count()),
                |o, _| Value::from(EventView { o, v1: true }.count()),
            ),
        ),
        Column { priority: 1, ..name_column() },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::tests::{at, names};
    use crate::table::{IncludeObject, default_columns, to_table};
    use serde_json::json;

    fn cells(group: &str, kind: &str, obj: Value, now: &str) -> Value {
        let columns = builtin_columns(group, kind).unwrap_or_default();
        to_table(&columns, &[obj], IncludeObject::None, "", at(now))["rows"][0]["cells"].clone()
    }

    #[test]
    fn service_table_golden() {
        let columns = builtin_columns("", "Service").unwrap_or_default();
        assert_eq!(
            names(&columns),
            [
                ("Name", 0),
                ("Type", 0),
                ("Cluster-IP", 0),
                ("External-IP", 0),
                ("Port(s)", 0),
                ("Age", 0),
                ("Selector", 1)
            ]
        );
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-02T10:00:00Z"},
            "spec": {
                "type": "LoadBalancer", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "web", "tier": "front"}
            },
            "status": {"loadBalancer": {}}
        });
        let table = to_table(&columns, &[svc], IncludeObject::Metadata, "7", at("2026-11-02T10:00:05Z"));
        let defs: Vec<Value> = table["columnDefinitions"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            defs[1],
            json!({"name": "Type", "type": "string", "format": "", "description": "type determines how the Service is exposed.", "priority": 0})
        );
        assert_eq!(
            table["rows"],
            json!([{
                "cells": ["web", "LoadBalancer", "10.96.0.10", "<pending>", "80:30080/TCP,53/UDP", "5s", "app=web,tier=front"],
                "object": {
                    "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                    "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2026-11-02T10:00:00Z"}
                }
            }])
        );
    }

    #[test]
    fn service_external_ips() {
        let now = "2026-11-02T10:00:00Z";
        let lb = json!({"metadata": {"name": "s"}, "spec": {"type": "LoadBalancer", "externalIPs": ["192.0.2.1"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.130"}, {"hostname": "lb.example"}, {"ip": "198.51.100.129"}]}}});
        assert_eq!(cells("", "Service", lb, now)[3], "198.51.100.129,198.51.100.130,lb.example,192.0.2.1");
        let cluster = json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "None"}});
        let c = cells("", "Service", cluster, now);
        assert_eq!(c, json!(["s", "ClusterIP", "None", "<none>", "<none>", "<unknown>", "<none>"]));
        let ext = json!({"metadata": {"name": "s"}, "spec": {"type": "ExternalName", "externalName": "db.example"}});
        assert_eq!(cells("", "Service", ext, now)[3], "db.example");
    }

    #[test]
    fn node_namespace_lease_tables() {
        let now = "2026-11-02T12:00:00Z";
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2026-11-02T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/worker": "", "kubernetes.io/role": "edge"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "False"}],
                "addresses": [{"type": "InternalIP", "address": "198.51.100.11"}],
                "nodeInfo": {"kubeletVersion": "v1.34.0", "osImage": "Debian"}}
        });
        assert_eq!(
            cells("", "Node", node, now),
            json!([
                "n1",
                "NotReady,SchedulingDisabled",
                "control-plane,edge,worker",
                "120m",
                "v1.34.0",
                "198.51.100.11",
                "<none>",
                "Debian",
                "<unknown>",
                "<unknown>"
            ])
        );
        let bare = cells("", "Node", json!({"metadata": {"name": "n2"}}), now);
        assert_eq!(bare[1], "Unknown");
        assert_eq!(bare[2], "<none>");
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2026-11-02T11:59:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(cells("", "Namespace", ns, now), json!(["default", "Active", "60s"]));
        let lease = json!({"metadata": {"name": "ferrolb-ipam"}, "spec": {"holderIdentity": "ctrl-0"}});
        assert_eq!(
            cells("coordination.k8s.io", "Lease", lease, now),
            json!(["ferrolb-ipam", "ctrl-0", "<unknown>"])
        );
        assert!(builtin_columns("ferrolb.io", "LoadBalancerIPPool").is_none());
        assert!(builtin_columns("", "Lease").is_none());
        assert_eq!(names(&default_columns()), [("Name", 0), ("Age", 0)]);
    }

    #[test]
    fn endpoints_tables() {
        let now = "2026-11-02T12:00:00Z";
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}
        ]});
        assert_eq!(cells("", "Endpoints", ep, now)[1], "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...");
        let v6 = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "2001:db8::1"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells("", "Endpoints", v6, now)[1], "[2001:db8::1]:80");
        assert_eq!(cells("", "Endpoints", json!({"metadata": {"name": "e"}}), now)[1], "<none>");
        let slice = json!({"metadata": {"name": "web-abc"}, "addressType": "IPv4",
            "ports": [{"port": 80}, {"name": "https"}, {}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
        assert_eq!(
            cells("discovery.k8s.io", "EndpointSlice", slice, now),
            json!(["web-abc", "IPv4", "80,https,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "<unknown>"])
        );
        let empty = json!({"metadata": {"name": "e"}, "addressType": "IPv6"});
        assert_eq!(cells("discovery.k8s.io", "EndpointSlice", empty, now)[2], "<unset>");
    }

    #[test]
    fn event_and_crd_tables() {
        let now = "2026-11-02T12:00:00Z";
        let columns = builtin_columns("", "Event").unwrap_or_default();
        assert_eq!(
            names(&columns),
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
        );
        let ev = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "IPAllocated",
            "involvedObject": {"kind": "Service", "name": "web"}, "message": " Assigned 198.51.100.130 \n",
            "firstTimestamp": "2026-11-02T11:00:00Z", "lastTimestamp": "2026-11-02T11:59:30Z", "count": 2,
            "source": {"component": "ferrolb-controller"}});
        assert_eq!(
            cells("", "Event", ev, now),
            json!([
                "30s",
                "Normal",
                "IPAllocated",
                "service/web",
                "",
                "ferrolb-controller",
                "Assigned 198.51.100.130",
                "60m",
                2,
                "web.1"
            ])
        );
        let ev1 = json!({"metadata": {"name": "web.2"}, "type": "Warning", "reason": "NoIP",
            "regarding": {"kind": "Service", "name": "web"}, "note": "pool exhausted",
            "eventTime": "2026-11-02T11:58:00.000000Z", "reportingController": "ferrolb.io/controller", "reportingInstance": "ctrl-0"});
        assert_eq!(
            cells("events.k8s.io", "Event", ev1, now),
            json!([
                "2m",
                "Warning",
                "NoIP",
                "service/web",
                "",
                "ferrolb.io/controller, ctrl-0",
                "pool exhausted",
                "2m",
                1,
                "web.2"
            ])
        );
        let crd = json!({"metadata": {"name": "loadbalancerippools.ferrolb.io", "creationTimestamp": "2026-11-02T10:00:00Z"}});
        assert_eq!(
            cells("apiextensions.k8s.io", "CustomResourceDefinition", crd, now),
            json!(["loadbalancerippools.ferrolb.io", "2026-11-02T10:00:00Z"])
        );
    }
}
