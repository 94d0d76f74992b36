//! Label selectors and label syntax as kube-apiserver checks them, written from the API's
//! documentation (apimachinery's `labels.Parse` grammar and `validation.IsQualifiedName` /
//! `IsValidLabelValue` rules), not from FerroLB's own selector in `ferrolb-api`.
//!
//! Why a second implementation: the simulator is the oracle the project's tests run against. Had
//! it matched selectors with the product's parser, a selector bug in `ferrolb-api` would be
//! reproduced here and no test could see it. The two are cross-checked in this module's tests,
//! on the cases the Kubernetes documentation gives and on generated selectors.

use std::collections::{BTreeMap, BTreeSet};

/// A parsed `?labelSelector=`: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    /// `k=v`, `k==v`, `k in (v, w)`.
    In(BTreeSet<String>),
    /// `k!=v`, `k notin (v, w)`: also true when the label is absent.
    NotIn(BTreeSet<String>),
    /// `k`.
    Exists,
    /// `!k`.
    DoesNotExist,
    /// `k>n`: the label is present and an integer above `n`.
    Gt(i64),
    /// `k<n`.
    Lt(i64),
}

/// Why a selector string was refused; kube-apiserver answers 400 with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("found '{found}', expected: {expected}")]
    Unexpected { found: String, expected: &'static str },
    #[error("for 'in', 'notin' operators, values set can't be empty")]
    EmptySet,
    #[error("for 'Gt', 'Lt' operators, the value must be an integer: {0:?}")]
    NotAnInteger(String),
    #[error("key: Invalid value: {key:?}: {why}")]
    Key { key: String, why: String },
    #[error("values[0][{key}]: Invalid value: {value:?}: {why}")]
    Value { key: String, value: String, why: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Eq,
    DoubleEq,
    NotEq,
    Bang,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::Bang => "!".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::End => String::new(),
        }
    }
}

/// Splits the input into tokens: identifiers run until whitespace or one of `!=<>(),`.
fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let token = match c {
            '=' | '!' | '<' | '>' | '(' | ')' | ',' => {
                chars.next();
                let followed_by_eq = chars.peek() == Some(&'=');
                match c {
                    '=' if followed_by_eq => {
                        chars.next();
                        Token::DoubleEq
                    }
                    '!' if followed_by_eq => {
                        chars.next();
                        Token::NotEq
                    }
                    '=' => Token::Eq,
                    '!' => Token::Bang,
                    '<' => Token::Lt,
                    '>' => Token::Gt,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Comma,
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "=!<>(),".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                Token::Ident(word)
            }
        };
        tokens.push(token);
    }
    tokens.push(Token::End);
    tokens
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.at]
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.at].clone();
        if t != Token::End {
            self.at += 1;
        }
        t
    }

    fn unexpected<T>(found: &Token, expected: &'static str) -> Result<T, ParseError> {
        Err(ParseError::Unexpected { found: found.text(), expected })
    }

    fn key(&mut self) -> Result<String, ParseError> {
        match self.next() {
            Token::Ident(k) if k != "in" && k != "notin" => {
                qualified_name(&k).map_err(|why| ParseError::Key { key: k.clone(), why })?;
                Ok(k)
            }
            other => Self::unexpected(&other, "identifier"),
        }
    }

    /// One value after `=`, `==`, `!=`, `>` or `<`: an identifier, or nothing (`k=` selects the
    /// empty value).
    fn single_value(&mut self) -> String {
        match self.peek() {
            Token::Ident(v) => {
                let v = v.clone();
                self.next();
                v
            }
            _ => String::new(),
        }
    }

    fn value_set(&mut self) -> Result<BTreeSet<String>, ParseError> {
        let open = self.next();
        if open != Token::Open {
            return Self::unexpected(&open, "'('");
        }
        let mut values = BTreeSet::new();
        if *self.peek() == Token::Close {
            self.next();
            return Err(ParseError::EmptySet);
        }
        loop {
            values.insert(self.single_value());
            match self.next() {
                Token::Comma => continue,
                Token::Close => return Ok(values),
                other => return Self::unexpected(&other, "',' or ')'"),
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, ParseError> {
        if *self.peek() == Token::Bang {
            self.next();
            let key = self.key()?;
            return Ok(Requirement { key, op: Op::DoesNotExist });
        }
        let key = self.key()?;
        let op = match self.peek().clone() {
            Token::Comma | Token::End => return Ok(Requirement { key, op: Op::Exists }),
            Token::Eq | Token::DoubleEq => {
                self.next();
                Op::In(BTreeSet::from([self.single_value()]))
            }
            Token::NotEq => {
                self.next();
                Op::NotIn(BTreeSet::from([self.single_value()]))
            }
            Token::Gt | Token::Lt => {
                let gt = self.next() == Token::Gt;
                let v = self.single_value();
                let n: i64 = v.parse().map_err(|_| ParseError::NotAnInteger(v.clone()))?;
                if gt { Op::Gt(n) } else { Op::Lt(n) }
            }
            Token::Ident(w) if w == "in" || w == "notin" => {
                self.next();
                let set = self.value_set()?;
                if w == "in" { Op::In(set) } else { Op::NotIn(set) }
            }
            other => return Self::unexpected(&other, "'=', '!=', '==', 'in', 'notin', '>', '<', ',' or end"),
        };
        if let Op::In(values) | Op::NotIn(values) = &op {
            for v in values {
                label_value(v).map_err(|why| ParseError::Value {
                    key: key.clone(),
                    value: v.clone(),
                    why,
                })?;
            }
        }
        Ok(Requirement { key, op })
    }
}

impl LabelSelector {
    /// Parses the string form of `?labelSelector=`; the empty string selects everything.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        let mut p = Parser { tokens: tokenize(input), at: 0 };
        let mut requirements = Vec::new();
        if *p.peek() == Token::End {
            return Ok(Self::default());
        }
        loop {
            requirements.push(p.requirement()?);
            match p.next() {
                Token::End => break,
                Token::Comma => continue,
                other => return Parser::unexpected(&other, "',' or end"),
            }
        }
        Ok(Self { requirements })
    }

    /// Whether an object with these labels is selected.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| {
            let value = labels.get(&r.key);
            match &r.op {
                Op::In(set) => value.is_some_and(|v| set.contains(v)),
                Op::NotIn(set) => value.is_none_or(|v| !set.contains(v)),
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::Gt(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::Lt(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }
}

const NAME_RULE: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63 characters.
fn is_name_part(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
}

/// A DNS-1123 subdomain: lowercase labels of alphanumerics and `-`, joined by dots, at most 253.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A label or annotation key (`IsQualifiedName`): `[prefix/]name`.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty() {
            return Err("prefix part must be non-empty".into());
        }
        if !is_dns_subdomain(p) {
            return Err("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".into());
        }
    }
    if name.is_empty() {
        return Err("name part must be non-empty".into());
    }
    if name.len() > 63 {
        return Err("name part must be no more than 63 characters".into());
    }
    if !is_name_part(name) {
        return Err(NAME_RULE.into());
    }
    Ok(())
}

/// A label value (`IsValidLabelValue`): empty, or like a key's name part.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_name_part(value) {
        Ok(())
    } else if value.len() > 63 {
        Err("must be no more than 63 characters".into())
    } else {
        Err("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The examples of the Kubernetes documentation ("Labels and Selectors"), with what they select.
    #[test]
    fn documented_selectors() {
        let prod_front = labels(&[("environment", "production"), ("tier", "frontend")]);
        let qa_back = labels(&[("environment", "qa"), ("tier", "backend"), ("partition", "customerA")]);
        let dev = labels(&[("environment", "dev")]);
        let cases: &[(&str, [bool; 3])] = &[
            ("environment = production", [true, false, false]),
            ("tier != frontend", [false, true, true]),
            ("environment=production,tier!=frontend", [false, false, false]),
            ("environment in (production, qa)", [true, true, false]),
            ("tier notin (frontend, backend)", [false, false, true]),
            ("partition", [false, true, false]),
            ("!partition", [true, false, true]),
            ("environment==qa , partition in (customerA,customerB)", [false, true, false]),
            ("", [true, true, true]),
        ];
        for (input, want) in cases {
            let s = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            let got = [&prod_front, &qa_back, &dev].map(|l| s.matches(l));
            assert_eq!(&got, want, "{input:?}");
        }
    }

    #[test]
    fn numeric_comparisons_need_an_integer_label() {
        let s = LabelSelector::parse("replicas>2,weight<10").unwrap();
        assert!(s.matches(&labels(&[("replicas", "3"), ("weight", "-1")])));
        assert!(!s.matches(&labels(&[("replicas", "2"), ("weight", "1")])));
        assert!(!s.matches(&labels(&[("replicas", "x3"), ("weight", "1")])));
        assert!(!s.matches(&labels(&[("weight", "1")])));
        assert_eq!(LabelSelector::parse("a>b"), Err(ParseError::NotAnInteger("b".into())));
    }

    #[test]
    fn malformed_selectors_are_refused() {
        for bad in [
            "a in ()",
            "a in (b",
            "a in b",
            "=b",
            "a=b,",
            ",a",
            "a b",
            "!",
            "a=b c",
            "Bad Key=1",
            "-a=b",
            "example.com/=x",
            "EXAMPLE.com/a=x",
            "a=-b",
            "a in (x, y_)",
            "in=a",
            "a!b",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for good in ["a=", "a==", "a!=", "example.com/a-b.c_d=x.y", "a in (,b)", " a , !b "] {
            assert!(LabelSelector::parse(good).is_ok(), "{good:?} should parse");
        }
    }

    #[test]
    fn keys_and_values() {
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name(&"a".repeat(63)).is_ok());
        assert!(qualified_name(&"a".repeat(64)).is_err());
        assert!(qualified_name(&format!("{}/a", "b".repeat(254))).is_err());
        assert!(qualified_name("a/b/c").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x-y").is_ok());
        assert!(label_value("ferrolb.io/l2").is_err());
        assert!(label_value(&"a".repeat(64)).is_err());
    }

    fn arb_key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-c]{1,3}",
            "[a-c]{1,2}\\.io/[a-c]{1,3}",
            // Invalid ones too: both must refuse them.
            "[A-C_-]{1,3}",
        ]
    }

    fn arb_value() -> impl Strategy<Value = String> {
        prop_oneof!["[x-z0-9]{0,3}", "[x-z]-?[0-9]?", "-[x-z]"]
    }

    fn arb_requirement() -> impl Strategy<Value = String> {
        (arb_key(), arb_value(), prop::collection::vec(arb_value(), 1..3), 0..8usize).prop_map(
            |(k, v, vs, op)| match op {
                0 => format!("{k}={v}"),
                1 => format!("{k}=={v}"),
                2 => format!("{k}!={v}"),
                3 => format!("{k} in ({})", vs.join(",")),
                4 => format!("{k} notin ({})", vs.join(", ")),
                5 => k,
                6 => format!("!{k}"),
                _ => format!("{k}>{}", v.len()),
            },
        )
    }

    proptest! {
        /// FerroLB's selector and this one agree on what parses and on what it selects: a
        /// disagreement is a bug in one of them.
        #[test]
        fn agrees_with_ferrolb_api(
            reqs in prop::collection::vec(arb_requirement(), 1..4),
            pairs in prop::collection::vec(("[a-c]{1,3}", "[x-z0-9]{0,3}"), 0..6),
        ) {
            let input = reqs.join(",");
            let ours = LabelSelector::parse(&input);
            let theirs = ferrolb_api::Selector::parse(&input);
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?} vs {:?}", input, ours, theirs);
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                let labels: BTreeMap<String, String> = pairs.into_iter().collect();
                prop_assert_eq!(ours.matches(&labels), theirs.matches(&labels), "{:?} on {:?}", input, labels);
            }
        }
    }
}
