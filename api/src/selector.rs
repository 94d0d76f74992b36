//! The one label-selector matcher of the project: built from a `LabelSelector` object or from the
//! string form used in `?labelSelector=` queries, validated once, then matched without allocation.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use thiserror::Error;

/// A validated label selector: every requirement must hold (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

/// One requirement on one label key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    In(BTreeSet<String>),
    NotIn(BTreeSet<String>),
    Exists,
    DoesNotExist,
    /// `key>N` and `key<N` of the string form (the API server accepts them in queries).
    Gt(i64),
    Lt(i64),
}

/// Why a selector cannot be used; the message names the key or the expression.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SelectorError {
    #[error("invalid label key {key:?}: {why}")]
    BadKey { key: String, why: &'static str },
    #[error("invalid value {value:?} for label {key:?}: {why}")]
    BadValue { key: String, value: String, why: &'static str },
    #[error("unknown operator {op:?} for key {key:?} (expected In, NotIn, Exists or DoesNotExist)")]
    BadOperator { key: String, op: String },
    #[error("operator {op} for key {key:?} needs at least one value")]
    MissingValues { key: String, op: &'static str },
    #[error("operator {op} for key {key:?} takes no values")]
    UnexpectedValues { key: String, op: &'static str },
    #[error("cannot parse selector {input:?} at {rest:?}")]
    Syntax { input: String, rest: String },
}

impl Selector {
    /// Matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// True when the selector has no requirement (and so matches every object).
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Builds from the API object form. `matchLabels` and `matchExpressions` are AND-ed.
    pub fn from_label_selector(sel: &LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            validate_key(k)?;
            validate_selector_value(k, v)?;
            requirements.push(Requirement { key: k.clone(), op: Op::In(BTreeSet::from([v.clone()])) });
        }
        for expr in sel.match_expressions.iter().flatten() {
            validate_key(&expr.key)?;
            let values: BTreeSet<String> = expr.values.iter().flatten().cloned().collect();
            for v in &values {
                validate_selector_value(&expr.key, v)?;
            }
            let key = expr.key.clone();
            let op = match expr.operator.as_str() {
                "In" | "NotIn" if values.is_empty() => {
                    let op = if expr.operator == "In" { "In" } else { "NotIn" };
                    return Err(SelectorError::MissingValues { key, op });
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    let op = if expr.operator == "Exists" { "Exists" } else { "DoesNotExist" };
                    return Err(SelectorError::UnexpectedValues { key, op });
                }
                "In" => Op::In(values),
                "NotIn" => Op::NotIn(values),
                "Exists" => Op::Exists,
                "DoesNotExist" => Op::DoesNotExist,
                other => return Err(SelectorError::BadOperator { key, op: other.to_string() }),
            };
            requirements.push(Requirement { key: expr.key.clone(), op });
        }
        Ok(Self { requirements })
    }

    /// Parses the string form: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`,
    /// `a>1`, `a<1`, comma separated.
    pub fn parse(input: &str) -> Result<Self, SelectorError> {
        let mut p = Parser { input, pos: 0 };
        let mut requirements = Vec::new();
        p.skip_ws();
        if p.at_end() {
            return Ok(Self::everything());
        }
        loop {
            requirements.push(p.requirement()?);
            p.skip_ws();
            if p.at_end() {
                break;
            }
            p.expect(",")?;
        }
        Ok(Self { requirements })
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
    }

    /// Like [`Selector::matches`], with `overrides` taking precedence over `labels` (FerroLB's
    /// pseudo-labels such as `io.kubernetes.service.namespace`).
    pub fn matches_with(&self, labels: &BTreeMap<String, String>, overrides: &[(&str, &str)]) -> bool {
        self.requirements.iter().all(|r| {
            let value = overrides
                .iter()
                .find(|(k, _)| *k == r.key)
                .map(|(_, v)| *v)
                .or_else(|| labels.get(&r.key).map(String::as_str));
            r.matches(value)
        })
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl Requirement {
    fn matches(&self, value: Option<&str>) -> bool {
        match (&self.op, value) {
            (Op::In(set), Some(v)) => set.contains(v),
            (Op::In(_), None) => false,
            // As in Kubernetes: NotIn and != also match objects without the label.
            (Op::NotIn(set), v) => v.is_none_or(|v| !set.contains(v)),
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v > *n),
            (Op::Lt(n), Some(v)) => v.parse::<i64>().is_ok_and(|v| v < *n),
            (Op::Gt(_) | Op::Lt(_), None) => false,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(",");
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let k = &r.key;
            match &r.op {
                Op::In(s) if s.len() == 1 => write!(f, "{k}={}", join(s))?,
                Op::In(s) => write!(f, "{k} in ({})", join(s))?,
                Op::NotIn(s) => write!(f, "{k} notin ({})", join(s))?,
                Op::Exists => write!(f, "{k}")?,
                Op::DoesNotExist => write!(f, "!{k}")?,
                Op::Gt(n) => write!(f, "{k}>{n}")?,
                Op::Lt(n) => write!(f, "{k}<{n}")?,
            }
        }
        Ok(())
    }
}

struct Parser<'a> {
    input: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }
    fn at_end(&self) -> bool {
        self.rest().is_empty()
    }
    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.input.len() - trimmed.len();
    }
    fn error(&self) -> SelectorError {
        SelectorError::Syntax { input: self.input.to_string(), rest: self.rest().to_string() }
    }
    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.pos += token.len();
            true
        } else {
            false
        }
    }
    fn expect(&mut self, token: &str) -> Result<(), SelectorError> {
        self.skip_ws();
        if self.eat(token) { Ok(()) } else { Err(self.error()) }
    }
    /// A key or value: everything up to a delimiter.
    fn word(&mut self) -> &str {
        self.skip_ws();
        let start = self.pos;
        let len = self
            .rest()
            .find(|c: char| c.is_whitespace() || ",=!()<>".contains(c))
            .unwrap_or(self.rest().len());
        self.pos += len;
        &self.input[start..start + len]
    }
    /// A word followed by white space and then `keyword` (`in`/`notin`) and `(`.
    fn keyword(&mut self, kw: &str) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.eat(kw) {
            let after = self.pos;
            self.skip_ws();
            if self.rest().starts_with('(') && (after > save) {
                return true;
            }
        }
        self.pos = save;
        false
    }
    fn values(&mut self, key: &str, op: &'static str) -> Result<BTreeSet<String>, SelectorError> {
        self.expect("(")?;
        self.skip_ws();
        // `a in ()` selects nothing; the API server refuses it rather than reading one empty value.
        if self.rest().starts_with(')') {
            return Err(SelectorError::MissingValues { key: key.to_string(), op });
        }
        let mut values = BTreeSet::new();
        loop {
            let v = self.word().to_string();
            validate_value(key, &v)?;
            values.insert(v);
            self.skip_ws();
            if self.eat(")") {
                return Ok(values);
            }
            self.expect(",")?;
        }
    }
    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_ws();
        if self.eat("!") {
            let key = self.word().to_string();
            validate_key(&key)?;
            return Ok(Requirement { key, op: Op::DoesNotExist });
        }
        let key = self.word().to_string();
        if key.is_empty() {
            return Err(self.error());
        }
        validate_key(&key)?;
        self.skip_ws();
        let op = if self.eat("==") || self.eat("=") {
            let v = self.word().to_string();
            validate_value(&key, &v)?;
            Op::In(BTreeSet::from([v]))
        } else if self.eat("!=") {
            let v = self.word().to_string();
            validate_value(&key, &v)?;
            Op::NotIn(BTreeSet::from([v]))
        } else if self.eat(">") || self.eat("<") {
            let gt = self.input.as_bytes()[self.pos - 1] == b'>';
            let n = self.word().parse::<i64>().map_err(|_| self.error())?;
            if gt { Op::Gt(n) } else { Op::Lt(n) }
        } else if self.keyword("notin") {
            Op::NotIn(self.values(&key, "notin")?)
        } else if self.keyword("in") {
            Op::In(self.values(&key, "in")?)
        } else if self.at_end() || self.rest().starts_with(',') {
            Op::Exists
        } else {
            return Err(self.error());
        };
        Ok(Requirement { key, op })
    }
}

fn is_name_segment(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// Checks a label key: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn validate_key(key: &str) -> Result<(), SelectorError> {
    let bad = |why| Err(SelectorError::BadKey { key: key.to_string(), why });
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return bad("the prefix must be a DNS subdomain such as example.com");
    }
    if !is_name_segment(name) {
        return bad("the name must be 1-63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric");
    }
    Ok(())
}

/// Pseudo-labels whose values are not label values: a load-balancer class contains a `/`
/// (`ferrolb.io/l2`), and a selector must still be able to name it.
const FREE_VALUE_KEYS: &[&str] = &[crate::names::labels::LOAD_BALANCER_CLASS];

fn validate_selector_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if FREE_VALUE_KEYS.contains(&key) && value.len() <= 253 {
        return Ok(());
    }
    validate_value(key, value)
}

/// Checks a label value: empty, or like the name part of a key.
pub fn validate_value(key: &str, value: &str) -> Result<(), SelectorError> {
    if value.is_empty() || is_name_segment(value) {
        Ok(())
    } else {
        Err(SelectorError::BadValue {
            key: key.to_string(),
            value: value.to_string(),
            why: "values are at most 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn string_form() {
        let s = Selector::parse("app=web, tier in (a, b),!legacy,env!=prod,zone notin (x),ready").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "a"), ("ready", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "c"), ("ready", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("ready", ""), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a"), ("ready", ""), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "a")])));
        let gt = Selector::parse("n>3").unwrap();
        assert!(gt.matches(&labels(&[("n", "4")])));
        assert!(!gt.matches(&labels(&[("n", "3")])));
        assert!(Selector::parse("").unwrap().is_everything());
        assert!(Selector::parse("app==web").unwrap().matches(&labels(&[("app", "web")])));
        // A key named like a keyword is still a key.
        assert!(Selector::parse("in=1").unwrap().matches(&labels(&[("in", "1")])));
    }

    #[test]
    fn string_form_errors() {
        for bad in
            ["app=", "=x", "a in (", "a in (b", "a b", "a,", "-bad=1", "a=b c", "a in ()", "a notin ( )"]
        {
            if bad == "app=" {
                // An empty value is valid: it matches the label set to "".
                assert!(Selector::parse(bad).is_ok());
                continue;
            }
            assert!(Selector::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn object_form() {
        let sel = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "io.kubernetes.service.namespace".into(),
                operator: "In".into(),
                values: Some(vec!["prod".into()]),
            }]),
        };
        let s = Selector::from_label_selector(&sel).unwrap();
        let l = labels(&[("app", "web"), ("io.kubernetes.service.namespace", "prod")]);
        assert!(s.matches(&l));
        // Pseudo-labels override user labels of the same key.
        assert!(!s.matches_with(&l, &[("io.kubernetes.service.namespace", "dev")]));
        assert!(s.matches_with(&labels(&[("app", "web")]), &[("io.kubernetes.service.namespace", "prod")]));
    }

    #[test]
    fn class_pseudo_label_takes_a_class_value() {
        let sel = LabelSelector {
            match_labels: Some(
                [("ferrolb.io/load-balancer-class".to_string(), "ferrolb.io/l2".to_string())].into(),
            ),
            match_expressions: None,
        };
        let s = Selector::from_label_selector(&sel).unwrap();
        assert!(s.matches_with(&BTreeMap::new(), &[("ferrolb.io/load-balancer-class", "ferrolb.io/l2")]));
        let bad = LabelSelector {
            match_labels: Some([("app".to_string(), "a/b".to_string())].into()),
            match_expressions: None,
        };
        assert!(Selector::from_label_selector(&bad).is_err(), "ordinary labels keep the value rules");
    }

    #[test]
    fn object_form_errors_name_the_key() {
        let sel = |op: &str, values: Option<Vec<String>>| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: op.into(),
                values,
            }]),
        };
        let e = Selector::from_label_selector(&sel("Maybe", None)).unwrap_err();
        assert!(e.to_string().contains("\"Maybe\""), "{e}");
        let e = Selector::from_label_selector(&sel("In", Some(vec![]))).unwrap_err();
        assert_eq!(e.to_string(), "operator In for key \"tier\" needs at least one value");
        let e = Selector::from_label_selector(&sel("Exists", Some(vec!["x".into()]))).unwrap_err();
        assert_eq!(e.to_string(), "operator Exists for key \"tier\" takes no values");
        let bad_key = LabelSelector {
            match_labels: Some([("bad key".into(), "v".into())].into()),
            match_expressions: None,
        };
        assert!(matches!(Selector::from_label_selector(&bad_key), Err(SelectorError::BadKey { .. })));
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = Selector::parse(&s);
        }

        #[test]
        fn display_round_trips(keys in proptest::collection::vec("[a-z]{1,8}", 1..4), vals in proptest::collection::vec("[a-z0-9]{1,8}", 1..4)) {
            let text = keys.iter().zip(vals.iter().cycle()).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
            let s = Selector::parse(&text).unwrap();
            prop_assert_eq!(Selector::parse(&s.to_string()).unwrap(), s);
        }
    }
}
