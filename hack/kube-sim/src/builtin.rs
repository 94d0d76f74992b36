//! What the apiserver's registries do for the built-in kinds FerroLB depends on: Service
//! defaulting, ClusterIP/NodePort allocation and validation (notably
//! `status.loadBalancer.ingress`), Namespace defaults, and object-name rules.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Value, json};

/// ClusterIP and NodePort allocators. Allocations are derived from stored Services when
/// released, so a restart of the allocator state is never needed.
#[derive(Debug)]
pub struct ServiceAllocator {
    cidrs: Vec<IpNet>,
    used_ips: BTreeSet<IpAddr>,
    used_ports: BTreeSet<u16>,
    next_port: u16,
    last_ip: std::collections::HashMap<String, IpAddr>,
}

const NODE_PORT_MIN: u16 = 30000;
const NODE_PORT_MAX: u16 = 32767;

impl ServiceAllocator {
    pub fn new(cidrs: Vec<IpNet>) -> Self {
        Self {
            cidrs,
            used_ips: BTreeSet::new(),
            used_ports: BTreeSet::new(),
            next_port: NODE_PORT_MIN,
            last_ip: Default::default(),
        }
    }

    fn cidr_for(&self, family: &str) -> Option<IpNet> {
        self.cidrs
            .iter()
            .copied()
            .find(|c| matches!((family, c), ("IPv4", IpNet::V4(_)) | ("IPv6", IpNet::V6(_))))
    }

    fn allocate_ip(&mut self, family: &str) -> Result<IpAddr, String> {
        let cidr =
            self.cidr_for(family).ok_or_else(|| format!("{family} is not configured on this cluster"))?;
        // Skip the network address and the first host (kubernetes.default in a real cluster).
        // The search starts after the last address handed out, as the apiserver's allocator
        // does, so allocating stays cheap with many Services.
        let hosts = || cidr.hosts().skip(1);
        let last = self.last_ip.get(family).copied();
        let ip = hosts()
            .skip_while(|ip| last.is_some_and(|l| *ip <= l))
            .chain(hosts())
            .find(|ip| !self.used_ips.contains(ip))
            .ok_or_else(|| format!("failed to allocate a serviceIP: range {cidr} is full"))?;
        self.used_ips.insert(ip);
        self.last_ip.insert(family.to_string(), ip);
        Ok(ip)
    }

    fn allocate_port(&mut self) -> Result<u16, String> {
        let span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
        for i in 0..span {
            let p = NODE_PORT_MIN + (self.next_port - NODE_PORT_MIN + i) % span;
            if self.used_ports.insert(p) {
                self.next_port = if p == NODE_PORT_MAX { NODE_PORT_MIN } else { p + 1 };
                return Ok(p);
            }
        }
        Err("failed to allocate a nodePort: range is full".into())
    }

    /// Frees what a deleted or replaced Service held.
    pub fn release(&mut self, svc: &Value) {
        for ip in cluster_ips(svc) {
            self.used_ips.remove(&ip);
        }
        for p in node_ports(svc) {
            self.used_ports.remove(&p);
        }
    }

    /// Marks what a stored Service holds as used (after a replaced Service keeps its values).
    pub fn reserve(&mut self, svc: &Value) {
        self.used_ips.extend(cluster_ips(svc));
        self.used_ports.extend(node_ports(svc));
    }

    /// Defaults, allocations and validation for a Service being created (`old` None) or updated.
    /// Returns field errors (`field: message`) when invalid; allocations are only kept on success.
    pub fn prepare(&mut self, old: Option<&Value>, svc: &mut Value) -> Result<(), Vec<String>> {
        default_service(old, svc);
        let mut errors = validate_service(old, svc);
        if !errors.is_empty() {
            return Err(errors);
        }
        let spec = &mut svc["spec"];
        let headless = spec["clusterIP"] == "None";
        let ty = spec["type"].as_str().unwrap_or("ClusterIP").to_string();
        let mut fresh_ips = Vec::new();
        let mut fresh_ports = Vec::new();
        if ty != "ExternalName"
            && !headless
            && spec.get("clusterIPs").is_none_or(|v| v.as_array().is_none_or(|a| a.is_empty()))
        {
            let families: Vec<String> = spec["ipFamilies"]
                .as_array()
                .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
                .unwrap_or_default();
            let mut ips = Vec::new();
            for f in &families {
                match self.allocate_ip(f) {
                    Ok(ip) => {
                        fresh_ips.push(ip);
                        ips.push(json!(ip.to_string()));
                    }
                    Err(e) => errors.push(format!("spec.ipFamilies: Invalid value: \"{f}\": {e}")),
                }
            }
            if let Some(first) = ips.first() {
                spec["clusterIP"] = first.clone();
            }
            spec["clusterIPs"] = Value::Array(ips);
        }
        if matches!(ty.as_str(), "NodePort" | "LoadBalancer")
            && !(ty == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] == false)
            && let Some(ports) = spec["ports"].as_array_mut()
        {
            for p in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                match self.allocate_port() {
                    Ok(n) => {
                        fresh_ports.push(n);
                        p["nodePort"] = json!(n);
                    }
                    Err(e) => errors.push(format!("spec.ports.nodePort: Invalid value: {e}")),
                }
            }
        }
        if errors.is_empty() {
            self.reserve(svc);
            Ok(())
        } else {
            for ip in fresh_ips {
                self.used_ips.remove(&ip);
            }
            for p in fresh_ports {
                self.used_ports.remove(&p);
            }
            Err(errors)
        }
    }
}

fn cluster_ips(svc: &Value) -> Vec<IpAddr> {
    svc.pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str()?.parse().ok())
        .collect()
}

fn node_ports(svc: &Value) -> Vec<u16> {
    svc.pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| u16::try_from(p.get("nodePort")?.as_u64()?).ok())
        .collect()
}

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj[key] = value;
    }
}

fn default_service(old: Option<&Value>, svc: &mut Value) {
    if !svc["spec"].is_object() {
        svc["spec"] = json!({});
    }
    let spec = &mut svc["spec"];
    set_default(spec, "type", json!("ClusterIP"));
    set_default(spec, "sessionAffinity", json!("None"));
    let ty = spec["type"].as_str().unwrap_or_default().to_string();
    // An update that leaves out allocated values keeps them, as the Service registry does.
    if let Some(old_spec) = old.map(|o| &o["spec"])
        && old_spec["type"] == spec["type"]
    {
        for key in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy", "healthCheckNodePort"] {
            if spec.get(key).is_none_or(Value::is_null) && old_spec.get(key).is_some() {
                spec[key] = old_spec[key].clone();
            }
        }
        if let (Some(ports), Some(old_ports)) = (spec["ports"].as_array_mut(), old_spec["ports"].as_array()) {
            for p in ports.iter_mut().filter(|p| p.get("nodePort").is_none()) {
                if let Some(o) =
                    old_ports.iter().find(|o| o["port"] == p["port"] && o.get("nodePort").is_some())
                {
                    p["nodePort"] = o["nodePort"].clone();
                }
            }
        }
    }
    if ty == "ExternalName" {
        return;
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
            if p.get("targetPort").is_none() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
    set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
    if spec.get("ipFamilies").is_none_or(|f| f.as_array().is_none_or(Vec::is_empty)) {
        let families = match spec["ipFamilyPolicy"].as_str() {
            Some("RequireDualStack") | Some("PreferDualStack") => json!(["IPv4", "IPv6"]),
            _ => {
                let v6 = spec["clusterIP"]
                    .as_str()
                    .and_then(|s| s.parse::<IpAddr>().ok())
                    .is_some_and(|ip| ip.is_ipv6());
                if v6 { json!(["IPv6"]) } else { json!(["IPv4"]) }
            }
        };
        spec["ipFamilies"] = families;
    }
    set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        set_default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if !svc["status"].is_object() {
        svc["status"] = json!({"loadBalancer": {}});
    }
}

fn validate_service(old: Option<&Value>, svc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let spec = &svc["spec"];
    let ty = spec["type"].as_str().unwrap_or_default();
    if !matches!(ty, "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName") {
        errors.push(format!(
            "spec.type: Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""
        ));
    }
    let ports = spec["ports"].as_array().map(Vec::as_slice).unwrap_or_default();
    if ty != "ExternalName" && spec["clusterIP"] != "None" && ports.is_empty() {
        errors.push("spec.ports: Required value".into());
    }
    let mut seen = BTreeSet::new();
    let mut names = BTreeSet::new();
    for (i, p) in ports.iter().enumerate() {
        let port = p["port"].as_i64().unwrap_or(0);
        if !(1..=65535).contains(&port) {
            errors.push(format!(
                "spec.ports[{i}].port: Invalid value: {port}: must be between 1 and 65535, inclusive"
            ));
        }
        let proto = p["protocol"].as_str().unwrap_or("TCP");
        if !matches!(proto, "TCP" | "UDP" | "SCTP") {
            errors.push(format!(
                "spec.ports[{i}].protocol: Unsupported value: \"{proto}\": supported values: \"SCTP\", \"TCP\", \"UDP\""
            ));
        }
        if !seen.insert((port, proto.to_string())) {
            errors.push(format!(
                "spec.ports[{i}]: Duplicate value: {{\"port\":{port},\"protocol\":\"{proto}\"}}"
            ));
        }
        // Endpoints are matched to ports by name, so names are required once there are two ports
        // and must be unique (a strategic-merge patch keyed by port can add a second "http").
        let name = p["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            if ports.len() > 1 {
                errors.push(format!("spec.ports[{i}].name: Required value"));
            }
        } else if !names.insert(name) {
            errors.push(format!("spec.ports[{i}].name: Duplicate value: \"{name}\""));
        } else if !is_dns_label(name) {
            errors.push(format!(
                "spec.ports[{i}].name: Invalid value: \"{name}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
            ));
        }
    }
    if let Some(class) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty != "LoadBalancer" {
            errors.push(
                "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'".into(),
            );
        }
        if let Some(old_class) =
            old.and_then(|o| o.pointer("/spec/loadBalancerClass")).and_then(Value::as_str)
            && old.is_some_and(|o| o["spec"]["type"] == "LoadBalancer")
            && ty == "LoadBalancer"
            && old_class != class
        {
            errors.push(
                "spec.loadBalancerClass: Invalid value: \"".to_string()
                    + class
                    + "\": may not change once set",
            );
        }
    }
    if let Some(policy) = spec.get("externalTrafficPolicy").and_then(Value::as_str)
        && !matches!(policy, "Cluster" | "Local")
    {
        errors.push(format!(
            "spec.externalTrafficPolicy: Unsupported value: \"{policy}\": supported values: \"Cluster\", \"Local\""
        ));
    }
    for (i, ip) in spec["externalIPs"].as_array().into_iter().flatten().enumerate() {
        if ip.as_str().and_then(|s| s.parse::<IpAddr>().ok()).is_none() {
            errors.push(format!("spec.externalIPs[{i}]: Invalid value: {ip}: must be a valid IP address"));
        }
    }
    errors.extend(validate_lb_status(svc));
    errors
}

/// `status.loadBalancer.ingress`: what FerroLB writes must pass the same checks as on a real
/// apiserver (an IP or a hostname, ipMode only with an IP and only VIP or Proxy).
pub fn validate_lb_status(svc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let ingress = svc.pointer("/status/loadBalancer/ingress").and_then(Value::as_array);
    for (i, ing) in ingress.into_iter().flatten().enumerate() {
        let path = format!("status.loadBalancer.ingress[{i}]");
        let ip = ing.get("ip").and_then(Value::as_str);
        if let Some(ip) = ip
            && ip.parse::<IpAddr>().is_err()
        {
            errors.push(format!("{path}.ip: Invalid value: \"{ip}\": must be a valid IP address"));
        }
        if let Some(mode) = ing.get("ipMode") {
            if ip.is_none() {
                errors.push(format!("{path}.ipMode: Forbidden: may not be specified when `ip` is not set"));
            } else if !matches!(mode.as_str(), Some("VIP" | "Proxy")) {
                errors.push(format!(
                    "{path}.ipMode: Unsupported value: {mode}: supported values: \"Proxy\", \"VIP\""
                ));
            }
        }
        if ip.is_none() && ing.get("hostname").is_none() {
            errors.push(format!("{path}: Required value: must specify `ip` or `hostname`"));
        }
    }
    errors
}

/// Namespaces start Active with the `kubernetes` finalizer.
pub fn default_namespace(ns: &mut Value) {
    if ns.pointer("/spec/finalizers").is_none() {
        ns["spec"] = json!({"finalizers": ["kubernetes"]});
    }
    ns["status"] = json!({"phase": "Active"});
}

/// Object-name rules: Services and Namespaces are DNS labels, the rest DNS subdomains.
pub fn validate_name(kind: &str, name: &str) -> Option<String> {
    let label = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    // Kubernetes' IsDNS1123Subdomain limits the whole name to 253 characters but, unlike a DNS
    // name, puts no 63-character limit on each dot-separated part.
    let subdomain_part = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    let ok = match kind {
        "Service" => label(name) && name.as_bytes()[0].is_ascii_lowercase(),
        "Namespace" => label(name),
        _ => name.len() <= 253 && name.split('.').all(subdomain_part),
    };
    (!ok).then(|| {
        let rule = match kind {
            "Service" => "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            "Namespace" => "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
            _ => "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
        };
        format!("metadata.name: Invalid value: \"{name}\": {rule}")
    })
}

/// An RFC 1123 label: at most 63 lowercase alphanumerics or `-`, starting and ending alphanumeric.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_defaults_and_allocation() {
        let mut a =
            ServiceAllocator::new(vec!["10.96.0.0/24".parse().unwrap(), "fd00:96::/120".parse().unwrap()]);
        let mut svc = json!({"spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}});
        a.prepare(None, &mut svc).unwrap();
        assert_eq!(svc["spec"]["clusterIPs"].as_array().unwrap().len(), 2);
        assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
        assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30000);
        assert_eq!(svc["spec"]["externalTrafficPolicy"], "Cluster");
        let mut other = json!({"spec": {"ports": [{"port": 80}]}});
        a.prepare(None, &mut other).unwrap();
        assert_ne!(other["spec"]["clusterIP"], svc["spec"]["clusterIP"]);
        // An update that omits allocated values keeps them.
        let mut update = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        a.prepare(Some(&svc), &mut update).unwrap();
        assert_eq!(update["spec"]["clusterIPs"], svc["spec"]["clusterIPs"]);
        assert_eq!(update["spec"]["ports"][0]["nodePort"], 30000);
    }

    #[test]
    fn ingress_must_be_an_ip() {
        let svc = json!({"status": {"loadBalancer": {"ingress": [{"ip": "not-an-ip", "ipMode": "VIP"}, {"ipMode": "VIP"}]}}});
        let errs = validate_lb_status(&svc);
        assert_eq!(
            errs[0],
            "status.loadBalancer.ingress[0].ip: Invalid value: \"not-an-ip\": must be a valid IP address"
        );
        assert!(errs.iter().any(|e| e.contains("ingress[1].ipMode: Forbidden")));
        let ok =
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.130", "ipMode": "VIP"}]}}});
        assert!(validate_lb_status(&ok).is_empty());
    }

    #[test]
    fn names() {
        assert!(validate_name("Service", "web").is_none());
        assert!(validate_name("Service", "1web").is_some());
        assert!(validate_name("LoadBalancerIPPool", "pool.a").is_none());
        assert!(validate_name("Namespace", "Bad").is_some());
        assert!(validate_name("LoadBalancerIPPool", &"p".repeat(100)).is_none(), "no per-part limit");
        assert!(validate_name("LoadBalancerIPPool", &"p".repeat(254)).is_some());
    }
}
