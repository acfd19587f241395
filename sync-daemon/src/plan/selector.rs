//! Label-selector strings (the value of `kubed.appscode.com/sync` and of our
//! `kubed-cross-sync.io/follower-namespaces`) parsed into kube-core expressions, with Kubernetes'
//! grammar and validation; matching is kube-core's. Also which namespaces such a value picks.
//!
//! Hand-written because kube-core only renders selectors to strings, it does not parse them.
//! Grammar (k8s.io/apimachinery `labels.Parse`): requirements joined by `,` (AND); each is
//! `key`, `!key`, `key=v`, `key==v`, `key!=v`, `key in (v1,v2)` or `key notin (v1,v2)`.
use kube::core::{Expression, Selector, SelectorExt};
use std::collections::{BTreeMap, BTreeSet};

/// Why a selector string was rejected. The message names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("unexpected {found}{} (expected {expected})", at(*pos))]
    Unexpected {
        found: String,
        /// `None` at the end of the selector.
        pos: Option<usize>,
        expected: &'static str,
    },
    #[error("invalid label key {0:?}")]
    InvalidKey(String),
    #[error("invalid label value {0:?}")]
    InvalidValue(String),
    #[error("empty value list for key {0:?}")]
    EmptySet(String),
}

fn at(pos: Option<usize>) -> String {
    pos.map(|p| format!(" at position {p}")).unwrap_or_default()
}

/// A parsed selector; an empty selector matches everything.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSelector(Selector);

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.matches(labels)
    }
}

impl std::fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Not,
    Eq,
    NotEq,
    Open,
    Close,
    Comma,
}

fn describe(t: Option<&(usize, Tok)>) -> String {
    match t {
        None => "end of selector".into(),
        Some((_, Tok::Ident(s))) => format!("{s:?}"),
        Some((_, Tok::Not)) => "'!'".into(),
        Some((_, Tok::Eq)) => "'='".into(),
        Some((_, Tok::NotEq)) => "'!='".into(),
        Some((_, Tok::Open)) => "'('".into(),
        Some((_, Tok::Close)) => "')'".into(),
        Some((_, Tok::Comma)) => "','".into(),
    }
}

fn lex(s: &str) -> Vec<(usize, Tok)> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let next = chars.get(i + 1).map(|(_, c)| *c);
        match c {
            c if c.is_whitespace() => i += 1,
            '!' if next == Some('=') => {
                out.push((pos, Tok::NotEq));
                i += 2;
            }
            '!' => {
                out.push((pos, Tok::Not));
                i += 1;
            }
            '=' if next == Some('=') => {
                out.push((pos, Tok::Eq));
                i += 2;
            }
            '=' => {
                out.push((pos, Tok::Eq));
                i += 1;
            }
            '(' => {
                out.push((pos, Tok::Open));
                i += 1;
            }
            ')' => {
                out.push((pos, Tok::Close));
                i += 1;
            }
            ',' => {
                out.push((pos, Tok::Comma));
                i += 1;
            }
            _ => {
                let mut word = String::new();
                while let Some((_, c)) = chars.get(i) {
                    if c.is_whitespace() || "!=(),".contains(*c) {
                        break;
                    }
                    word.push(*c);
                    i += 1;
                }
                out.push((pos, Tok::Ident(word)));
            }
        }
    }
    out
}

fn is_name(s: &str, max: usize) -> bool {
    let b = s.as_bytes();
    !s.is_empty()
        && s.len() <= max
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|part| {
            let b = part.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

/// A qualified label key: `[dns-subdomain/]name`, name ≤ 63 characters.
pub fn valid_key(k: &str) -> bool {
    match k.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_name(name, 63),
        None => is_name(k, 63),
    }
}

/// A label value: empty, or ≤ 63 characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
pub fn valid_value(v: &str) -> bool {
    v.is_empty() || is_name(v, 63)
}

fn key(tok: Option<&(usize, Tok)>) -> Result<String, SelectorError> {
    match tok {
        Some((_, Tok::Ident(k))) if valid_key(k) => Ok(k.clone()),
        Some((_, Tok::Ident(k))) => Err(SelectorError::InvalidKey(k.clone())),
        other => Err(SelectorError::Unexpected {
            found: describe(other),
            pos: other.map(|t| t.0),
            expected: "a label key",
        }),
    }
}

/// Parses a selector; `""` gives the empty selector (matches everything).
pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
    let toks = lex(s);
    let mut it = toks.iter().peekable();
    let mut exprs = Vec::new();
    if toks.is_empty() {
        return Ok(LabelSelector(Selector::default()));
    }
    loop {
        let expr = if matches!(it.peek(), Some((_, Tok::Not))) {
            it.next();
            Expression::DoesNotExist(key(it.next())?)
        } else {
            let k = key(it.next())?;
            match it.peek().map(|t| &t.1) {
                None | Some(Tok::Comma) => Expression::Exists(k),
                Some(Tok::Eq) | Some(Tok::NotEq) => {
                    let neg = matches!(it.next().map(|t| &t.1), Some(Tok::NotEq));
                    // `k=` (empty value) is legal: it matches the empty label value.
                    let v = match it.peek() {
                        Some((_, Tok::Ident(v))) => {
                            it.next();
                            v.clone()
                        }
                        _ => String::new(),
                    };
                    if !valid_value(&v) {
                        return Err(SelectorError::InvalidValue(v));
                    }
                    if neg {
                        Expression::NotEqual(k, v)
                    } else {
                        Expression::Equal(k, v)
                    }
                }
                Some(Tok::Ident(op)) if op == "in" || op == "notin" => {
                    let notin = op == "notin";
                    it.next();
                    let values = parse_set(&mut it)?;
                    if values.is_empty() {
                        return Err(SelectorError::EmptySet(k));
                    }
                    if notin {
                        Expression::NotIn(k, values)
                    } else {
                        Expression::In(k, values)
                    }
                }
                _ => {
                    let t = it.next();
                    return Err(SelectorError::Unexpected {
                        found: describe(t),
                        pos: t.map(|t| t.0),
                        expected: "',', '=', '!=', 'in' or 'notin'",
                    });
                }
            }
        };
        exprs.push(expr);
        match it.next() {
            None => break,
            Some((_, Tok::Comma)) => continue,
            other => {
                return Err(SelectorError::Unexpected {
                    found: describe(other),
                    pos: other.map(|t| t.0),
                    expected: "',' or end of selector",
                });
            }
        }
    }
    Ok(LabelSelector(Selector::from_iter(exprs)))
}

fn parse_set<'a>(
    it: &mut std::iter::Peekable<impl Iterator<Item = &'a (usize, Tok)>>,
) -> Result<BTreeSet<String>, SelectorError> {
    match it.next() {
        Some((_, Tok::Open)) => {}
        other => {
            return Err(SelectorError::Unexpected {
                found: describe(other),
                pos: other.map(|t| t.0),
                expected: "'('",
            });
        }
    }
    let mut values = BTreeSet::new();
    let mut want_value = true;
    loop {
        match it.next() {
            // `()` is the set holding the empty value, as in apimachinery's parseValues; it is
            // also how kube-core prints that set, so parse(display(s)) == s (found by fuzzing).
            Some((_, Tok::Close)) if values.is_empty() && want_value => {
                return Ok(BTreeSet::from([String::new()]));
            }
            Some((_, Tok::Close)) => return Ok(values),
            Some((_, Tok::Ident(v))) if want_value => {
                if !valid_value(v) {
                    return Err(SelectorError::InvalidValue(v.clone()));
                }
                values.insert(v.clone());
                want_value = false;
            }
            Some((_, Tok::Comma)) => {
                // `(a,,b)` and `(a,)` contribute the empty value, as in apimachinery.
                if want_value {
                    values.insert(String::new());
                }
                want_value = true;
            }
            other => {
                return Err(SelectorError::Unexpected {
                    found: describe(other),
                    pos: other.map(|t| t.0),
                    expected: "a value, ',' or ')'",
                });
            }
        }
    }
}

/// Never picked by `sync: ""` (every namespace); a label selector may still pick them.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// Which namespaces a selector annotation (`sync`, and our `follower-namespaces`) picks.
#[derive(Debug, Clone, PartialEq)]
pub enum IntraSync {
    /// `""` or `"true"`: every namespace but the source's and the system ones.
    All,
    Selector(LabelSelector),
    /// A malformed selector: no namespace (copies go nowhere rather than everywhere).
    Nothing,
}

/// Parses a selector annotation's value: `""`/`"true"` or a label selector.
pub fn parse_selector(v: &str) -> Result<IntraSync, SelectorError> {
    let v = v.trim();
    if v.is_empty() || v == "true" {
        return Ok(IntraSync::All);
    }
    parse(v).map(IntraSync::Selector)
}

impl IntraSync {
    /// Whether namespace `n` is picked (terminating, excluded and source namespaces are the
    /// caller's business).
    pub fn picks(&self, n: &crate::plan::kinds::NamespaceView) -> bool {
        match self {
            IntraSync::All => !SYSTEM_NAMESPACES.contains(&n.name.as_str()),
            IntraSync::Selector(sel) => sel.matches(&n.labels),
            IntraSync::Nothing => false,
        }
    }
}

/// A namespace name (RFC 1123 label).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn grammar_and_matching() {
        let prod = labels(&[("env", "prod"), ("team", "a")]);
        let dev = labels(&[("env", "dev")]);
        let none = labels(&[]);
        // (selector, matches prod, matches dev, matches none)
        let table: &[(&str, bool, bool, bool)] = &[
            ("", true, true, true),
            ("env=prod", true, false, false),
            ("env==prod", true, false, false),
            ("env = prod", true, false, false),
            ("env!=prod", false, true, true),
            ("env", true, true, false),
            ("!env", false, false, true),
            ("!team", false, true, true),
            ("env in (prod, dev)", true, true, false),
            ("env in (prod)", true, false, false),
            ("env notin (prod)", false, true, true),
            ("env=prod,team=a", true, false, false),
            ("env=prod, team=b", false, false, false),
            ("env in (dev),!team", false, true, false),
            ("app.kubernetes.io/part-of!=x", true, true, true),
            ("false", false, false, false), // kubed: "false" means "has label key false"
        ];
        for (sel, p, d, n) in table {
            let s = parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(
                (s.matches(&prod), s.matches(&dev), s.matches(&none)),
                (*p, *d, *n),
                "{sel}"
            );
        }
    }

    #[test]
    fn rejects_bad_selectors() {
        for sel in [
            "env=",        // legal: empty value (checked below)
            "env in prod", // missing parens
            "=prod",
            "env=prod,",
            "env=prod)",
            "env in (a",
            "-bad=x",
            "env=bad value",
            "env=a=b",
            "env>1",
            "!",
            "a/b/c=x",
            "Upper.Case/x=y",
        ] {
            let r = parse(sel);
            if sel == "env=" {
                assert!(r.is_ok(), "{sel}");
            } else {
                assert!(r.is_err(), "{sel} should fail, got {r:?}");
            }
        }
    }

    #[test]
    fn errors_are_specific() {
        // `()` holds the empty value (apimachinery), and that is how the set prints.
        let empty = parse("env in ()").unwrap();
        assert_eq!(parse(" env in (,)").unwrap(), empty);
        assert_eq!(parse(&empty.to_string()).unwrap(), empty);
        assert!(empty.matches(&labels(&[("env", "")])));
        assert!(!empty.matches(&labels(&[("env", "prod")])));
        assert_eq!(parse("-x"), Err(SelectorError::InvalidKey("-x".into())));
        assert!(matches!(
            parse("env in prod"),
            Err(SelectorError::Unexpected {
                expected: "'('",
                ..
            })
        ));
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "(",
            ")",
            ",,",
            "!!",
            "ü=ö",
            "a in (b,,c)",
            " ",
            "\u{0}",
            "a!",
            "in in (in)",
        ] {
            let _ = parse(s);
        }
    }
}
