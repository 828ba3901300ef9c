//! Where each node of a parsed query starts in the query text, so annotations can name
//! it as Prometheus does: `PromQL warning: … (1:25)`, line and 1-based column of the
//! node's first byte.
//!
//! The parser's AST keeps no positions, so they are recovered from its own lexer: the
//! AST is walked in source order, and each node that starts with a token of its own
//! (a function or aggregation name, `(`, a unary `-`, a literal, a selector's name or
//! `{`) takes the next such token. Tokens that never start a node are passed over on
//! the way: `{…}` matchers, `[…]` ranges, `by`/`on`/`group_left`… label lists,
//! `offset` and `@` modifiers. A node whose token is not found has no position and its
//! annotations are printed without one.

use std::collections::HashMap;

use lrpar::{Lexeme, Lexer};
use promql_parser::parser::token::{
    T_ADD, T_AT, T_BY, T_END, T_FILL, T_FILL_LEFT, T_FILL_RIGHT, T_GROUP_LEFT, T_GROUP_RIGHT,
    T_IGNORING, T_LEFT_BRACE, T_LEFT_BRACKET, T_LEFT_PAREN, T_NUMBER, T_OFFSET, T_ON,
    T_RIGHT_BRACE, T_RIGHT_BRACKET, T_RIGHT_PAREN, T_START, T_STRING, T_SUB, T_WITHOUT, TokenId,
};
use promql_parser::parser::{Call, Expr, lexer};

/// Start offsets of a query's nodes, by node address (the AST is borrowed, immutable,
/// for the whole evaluation, as the evaluator's other per-node tables assume).
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// `(line, column)` by node address.
    starts: HashMap<usize, (usize, usize)>,
}

/// A node annotations can name: an expression, or a call inside one (which starts
/// where its expression does).
pub(crate) trait Node {
    fn key(&self) -> usize;
}

impl Node for Expr {
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

impl Node for Call {
    fn key(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }
}

impl Positions {
    /// Positions of the nodes of `expr`, parsed from `query`.
    pub(crate) fn of(query: &str, expr: &Expr) -> Positions {
        let Ok(lexed) = lexer(query) else {
            return Positions::default();
        };
        let tokens: Vec<Token> = lexed
            .iter()
            .filter_map(|l| l.ok())
            .map(|l| Token {
                id: l.tok_id(),
                start: l.span().start(),
                end: l.span().end(),
            })
            .collect();
        let mut walk = Walk {
            query,
            tokens,
            next: 0,
            starts: HashMap::new(),
        };
        walk.expr(expr);
        let starts = walk
            .starts
            .into_iter()
            .map(|(k, offset)| (k, line_column(query, offset)))
            .collect();
        Positions { starts }
    }

    /// ` (line:col)` of a node, as Prometheus appends it to an annotation; empty when
    /// the node's position is unknown.
    pub(crate) fn suffix(&self, node: &impl Node) -> String {
        match self.starts.get(&node.key()) {
            Some((line, column)) => format!(" ({line}:{column})"),
            None => String::new(),
        }
    }
}

/// Line (1-based) and column (1-based, in bytes from the last line break) of `offset`.
fn line_column(query: &str, offset: usize) -> (usize, usize) {
    let before = &query.as_bytes()[..offset.min(query.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let column = match before.iter().rposition(|&b| b == b'\n') {
        Some(nl) => offset - nl,
        None => offset + 1,
    };
    (line, column)
}

#[derive(Debug, Clone, Copy)]
struct Token {
    id: TokenId,
    start: usize,
    end: usize,
}

struct Walk<'q> {
    query: &'q str,
    tokens: Vec<Token>,
    /// Index of the first token not consumed yet.
    next: usize,
    starts: HashMap<usize, usize>,
}

/// Keywords followed by a parenthesised label list.
const LABEL_LIST: &[TokenId] = &[
    T_BY,
    T_WITHOUT,
    T_ON,
    T_IGNORING,
    T_GROUP_LEFT,
    T_GROUP_RIGHT,
    T_FILL,
    T_FILL_LEFT,
    T_FILL_RIGHT,
];

impl Walk<'_> {
    fn text(&self, t: Token) -> &str {
        self.query.get(t.start..t.end).unwrap_or("")
    }

    /// Index of the token after the group opened at `i` by `open` and closed by `close`.
    fn skip_group(&self, i: usize, open: TokenId, close: TokenId) -> usize {
        let mut depth = 0usize;
        for (j, t) in self.tokens.iter().enumerate().skip(i) {
            if t.id == open {
                depth += 1;
            } else if t.id == close {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return j + 1;
                }
            }
        }
        self.tokens.len()
    }

    /// Consumes tokens up to and including the next one `wanted` accepts, passing over
    /// the ones that never start a node; returns that token.
    fn take(&mut self, wanted: impl Fn(&Self, Token) -> bool) -> Option<Token> {
        let mut i = self.next;
        while let Some(&t) = self.tokens.get(i) {
            if wanted(self, t) {
                self.next = i + 1;
                return Some(t);
            }
            i = match t.id {
                T_LEFT_BRACE => self.skip_group(i, T_LEFT_BRACE, T_RIGHT_BRACE),
                T_LEFT_BRACKET => self.skip_group(i, T_LEFT_BRACKET, T_RIGHT_BRACKET),
                id if LABEL_LIST.contains(&id) => match self.tokens.get(i + 1) {
                    Some(n) if n.id == T_LEFT_PAREN => {
                        self.skip_group(i + 1, T_LEFT_PAREN, T_RIGHT_PAREN)
                    }
                    _ => i + 1,
                },
                T_OFFSET => {
                    let mut j = i + 1;
                    if self.tokens.get(j).is_some_and(|n| n.id == T_SUB) {
                        j += 1;
                    }
                    j + 1
                }
                T_AT => match self.tokens.get(i + 1) {
                    Some(n) if n.id == T_START || n.id == T_END => match self.tokens.get(i + 2) {
                        Some(p) if p.id == T_LEFT_PAREN => {
                            self.skip_group(i + 2, T_LEFT_PAREN, T_RIGHT_PAREN)
                        }
                        _ => i + 2,
                    },
                    Some(n) if n.id == T_SUB => i + 3,
                    _ => i + 2,
                },
                _ => i + 1,
            };
        }
        None
    }

    fn record(&mut self, expr: &Expr, start: Option<usize>) -> Option<usize> {
        if let Some(start) = start {
            self.starts.insert(expr.key(), start);
        }
        start
    }

    /// Walks `expr` in source order; returns its start offset.
    fn expr(&mut self, expr: &Expr) -> Option<usize> {
        let start = match expr {
            Expr::NumberLiteral(n) => {
                let before = self.next;
                let t = self.take(|_, t| t.id == T_NUMBER)?;
                // A negative literal is `-` folded into the number by the parser.
                let i = self.next - 1;
                let minus =
                    i > before && self.tokens[i - 1].id == T_SUB && n.val.is_sign_negative();
                Some(if minus {
                    self.tokens[i - 1].start
                } else {
                    t.start
                })
            }
            Expr::StringLiteral(_) => self.take(|_, t| t.id == T_STRING).map(|t| t.start),
            Expr::VectorSelector(vs) => {
                let name = vs.name.clone();
                self.take(|w, t| {
                    t.id == T_LEFT_BRACE || name.as_deref().is_some_and(|n| w.text(t) == n)
                })
                .map(|t| t.start)
            }
            Expr::MatrixSelector(ms) => {
                let start = self.take(|w, t| {
                    t.id == T_LEFT_BRACE || ms.vs.name.as_deref().is_some_and(|n| w.text(t) == n)
                });
                start.map(|t| t.start)
            }
            Expr::Subquery(sq) => self.expr(&sq.expr),
            Expr::Paren(p) => {
                let start = self.take(|_, t| t.id == T_LEFT_PAREN).map(|t| t.start);
                self.expr(&p.expr);
                start
            }
            Expr::Unary(u) => {
                let start = self
                    .take(|_, t| t.id == T_SUB || t.id == T_ADD)
                    .map(|t| t.start);
                self.expr(&u.expr);
                start
            }
            Expr::Binary(b) => {
                let start = self.expr(&b.lhs);
                let op = b.op.id();
                self.take(|_, t| t.id == op);
                self.expr(&b.rhs);
                start
            }
            Expr::Aggregate(a) => {
                let op = a.op.id();
                let start = self.take(|_, t| t.id == op).map(|t| t.start);
                // The aggregation's own `(` (after a leading `by (…)`) starts no node.
                self.take(|_, t| t.id == T_LEFT_PAREN);
                if let Some(param) = &a.param {
                    self.expr(param);
                }
                self.expr(&a.expr);
                start
            }
            Expr::Call(c) => {
                let name = c.func.name;
                let start = self.take(|w, t| w.text(t) == name).map(|t| t.start);
                self.take(|_, t| t.id == T_LEFT_PAREN);
                for arg in &c.args.args {
                    self.expr(arg);
                }
                start
            }
            Expr::Extension(_) => None,
        };
        if let (Expr::Call(c), Some(start)) = (expr, start) {
            self.starts.insert(c.key(), start);
        }
        self.record(expr, start)
    }
}

#[cfg(test)]
mod tests {
    use promql_parser::parser::{Expr, parse};

    use super::Positions;

    /// The position printed for the first node (in pre-order) that `pick` selects.
    fn position_of(query: &str, pick: impl Fn(&Expr) -> bool) -> String {
        fn find<'e>(e: &'e Expr, pick: &dyn Fn(&Expr) -> bool) -> Option<&'e Expr> {
            if pick(e) {
                return Some(e);
            }
            let children: Vec<&Expr> = match e {
                Expr::Aggregate(a) => a.param.iter().map(|p| &**p).chain([&*a.expr]).collect(),
                Expr::Unary(u) => vec![&*u.expr],
                Expr::Binary(b) => vec![&*b.lhs, &*b.rhs],
                Expr::Paren(p) => vec![&*p.expr],
                Expr::Subquery(s) => vec![&*s.expr],
                Expr::Call(c) => c.args.args.iter().map(|a| &**a).collect(),
                _ => Vec::new(),
            };
            children.into_iter().find_map(|c| find(c, pick))
        }
        let expr = parse(query).expect("query parses");
        let positions = Positions::of(query, &expr);
        let node = find(&expr, &pick).expect("node present");
        positions.suffix(node)
    }

    fn is_call(name: &'static str) -> impl Fn(&Expr) -> bool {
        move |e| matches!(e, Expr::Call(c) if c.func.name == name)
    }

    fn is_selector(name: &'static str) -> impl Fn(&Expr) -> bool {
        move |e| match e {
            Expr::VectorSelector(vs) => vs.name.as_deref() == Some(name),
            Expr::MatrixSelector(ms) => ms.vs.name.as_deref() == Some(name),
            _ => false,
        }
    }

    #[test]
    fn columns_match_the_ones_prometheus_prints() {
        // Expected columns are the ones in Prometheus' own test scripts' annotations.
        assert_eq!(position_of("sort(series)", is_call("sort")), " (1:1)");
        assert_eq!(position_of("sum(sort(series))", is_call("sort")), " (1:5)");
        assert_eq!(
            position_of("histogram_quantile(0.8, series)", is_selector("series")),
            " (1:25)"
        );
        assert_eq!(
            position_of(
                "histogram_quantiles(series, \"q\", 0.1, 0.2)",
                is_selector("series")
            ),
            " (1:21)"
        );
        assert_eq!(
            position_of("histogram_fraction(-Inf, 1, series)", is_selector("series")),
            " (1:29)"
        );
        assert_eq!(
            position_of(
                "rate(counter_total{type=\"overlap\"}[3m])",
                is_selector("counter_total")
            ),
            " (1:6)"
        );
    }

    #[test]
    fn tokens_that_start_no_node_are_passed_over() {
        // A label named like the function, in a `by` list, is not the call.
        assert_eq!(
            position_of("sum by (rate) (rate(x[5m]))", is_call("rate")),
            " (1:16)"
        );
        // The aggregation's own parenthesis is not a parenthesised expression.
        assert_eq!(
            position_of("sum((x))", |e| matches!(e, Expr::Paren(_))),
            " (1:5)"
        );
        // `@ start()` and `offset` pass; a binary operator is not a unary minus.
        assert_eq!(
            position_of("a @ start() offset 5m - -(b)", |e| matches!(
                e,
                Expr::Unary(_)
            )),
            " (1:25)"
        );
        assert_eq!(
            position_of("max_over_time(x[300:10]) + clamp_max(y, -2)", |e| {
                matches!(e, Expr::NumberLiteral(n) if n.val == -2.0)
            }),
            " (1:41)"
        );
        // Lines count from 1, columns from the last line break.
        assert_eq!(
            position_of("sum(\n  rate(x_total[5m])\n)", is_selector("x_total")),
            " (2:8)"
        );
    }
}
