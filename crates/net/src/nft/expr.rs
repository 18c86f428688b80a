//! Short constructors for the nftables JSON schema (`nftables` crate), so rule code reads
//! like the rules it makes.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use nftables::expr::{
    BinaryOperation, CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression,
    NgMode, Numgen, Payload, PayloadField, Prefix, SetItem, Verdict,
};
use nftables::stmt::{JumpTarget, Mangle, Match, NAT, NATFlag, Operator, Statement, VerdictMap};

pub type Expr = Expression<'static>;
pub type Stmt = Statement<'static>;

pub fn s(v: impl Into<String>) -> Expr {
    Expression::String(Cow::Owned(v.into()))
}

pub fn n(v: u32) -> Expr {
    Expression::Number(v)
}

pub fn ip(v: Ipv4Addr) -> Expr {
    s(v.to_string())
}

pub fn net(v: Ipv4Net) -> Expr {
    if v.prefix_len() == 32 {
        ip(v.addr())
    } else {
        Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(ip(v.network())),
            len: u32::from(v.prefix_len()),
        }))
    }
}

/// `<protocol> <field>` (`ip saddr`, `th dport`).
pub fn field(protocol: &'static str, name: &'static str) -> Expr {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(name),
        },
    )))
}

pub fn meta(key: MetaKey) -> Expr {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub fn ct(key: &'static str) -> Expr {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}

/// `fib daddr type` / `fib saddr type`.
pub fn fib_type(flag: FibFlag) -> Expr {
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags: HashSet::from([flag]),
    }))
}

pub fn concat(parts: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Concat(parts))
}

/// An anonymous set `{ a, b }`.
pub fn set(items: Vec<Expr>) -> Expr {
    Expression::Named(NamedExpression::Set(
        items.into_iter().map(SetItem::Element).collect(),
    ))
}

/// `@name` (a named set).
pub fn set_ref(name: &str) -> Expr {
    s(format!("@{name}"))
}

fn matching(left: Expr, right: Expr, op: Operator) -> Stmt {
    Statement::Match(Match { left, right, op })
}

pub fn eq(left: Expr, right: Expr) -> Stmt {
    matching(left, right, Operator::EQ)
}

pub fn ne(left: Expr, right: Expr) -> Stmt {
    matching(left, right, Operator::NEQ)
}

pub fn is_in(left: Expr, right: Expr) -> Stmt {
    matching(left, right, Operator::IN)
}

pub fn jump(chain: &str) -> Stmt {
    Statement::Jump(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    })
}

pub fn goto(chain: &str) -> Stmt {
    Statement::Goto(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    })
}

pub fn verdict_goto(chain: &str) -> Expression<'static> {
    Expression::Verdict(Verdict::Goto(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    }))
}

pub fn verdict_jump(chain: &str) -> Expression<'static> {
    Expression::Verdict(Verdict::Jump(JumpTarget {
        target: Cow::Owned(chain.to_string()),
    }))
}

/// `a-b` (a port range).
pub fn range(a: Expr, b: Expr) -> Expr {
    Expression::Range(Box::new(nftables::expr::Range { range: [a, b] }))
}

pub fn accept() -> Stmt {
    Statement::Accept(None)
}

pub fn drop() -> Stmt {
    Statement::Drop(None)
}

pub fn ret() -> Stmt {
    Statement::Return(None)
}

/// `<key> vmap { k1 : v1, ... }` with an anonymous map.
pub fn vmap(key: Expr, entries: Vec<(Expr, Expr)>) -> Stmt {
    Statement::VerdictMap(VerdictMap {
        key,
        data: Expression::Named(NamedExpression::Set(
            entries
                .into_iter()
                .map(|(k, v)| SetItem::Mapping(k, v))
                .collect(),
        )),
    })
}

/// `numgen random mod <n>`.
pub fn numgen_random(modulus: u32) -> Expr {
    Expression::Named(NamedExpression::Numgen(Numgen {
        mode: NgMode::Random,
        ng_mod: modulus,
        offset: None,
    }))
}

/// `dnat to <addr>:<port>` (the rule must have matched the L4 protocol before).
pub fn dnat(addr: Ipv4Addr, port: u16) -> Stmt {
    Statement::DNAT(Some(NAT {
        addr: Some(ip(addr)),
        family: Some(nftables::stmt::NATFamily::IP),
        port: Some(n(u32::from(port))),
        flags: None,
    }))
}

pub fn masquerade() -> Stmt {
    Statement::Masquerade(Some(NAT {
        addr: None,
        family: None,
        port: None,
        flags: Some(HashSet::from([NATFlag::FullyRandom])),
    }))
}

/// `meta mark set meta mark | bit`.
pub fn set_mark_bit(bit: u32) -> Stmt {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
            meta(MetaKey::Mark),
            n(bit),
        ]))),
    })
}

/// `meta mark set meta mark ^ bit` (clears a bit known to be set).
pub fn flip_mark_bit(bit: u32) -> Stmt {
    Statement::Mangle(Mangle {
        key: meta(MetaKey::Mark),
        value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
            meta(MetaKey::Mark),
            n(bit),
        ))),
    })
}

/// `meta mark & bit == 0`.
pub fn mark_bit_clear(bit: u32) -> Stmt {
    eq(
        Expression::BinaryOperation(Box::new(BinaryOperation::AND(meta(MetaKey::Mark), n(bit)))),
        n(0),
    )
}

/// `reject` (ICMP port unreachable; TCP peers see a refused connection).
pub fn reject() -> Stmt {
    Statement::Reject(None)
}

/// `reject with tcp reset`.
pub fn reject_tcp_reset() -> Stmt {
    Statement::Reject(Some(nftables::stmt::Reject::new(
        Some(nftables::stmt::RejectType::TCPReset),
        None,
    )))
}

/// `update @set { ip saddr }` (refreshes the element's timeout).
pub fn update_set_with_saddr(set_name: &str) -> Stmt {
    Statement::Set(nftables::stmt::Set {
        op: nftables::stmt::SetOp::Update,
        elem: field("ip", "saddr"),
        set: Cow::Owned(format!("@{set_name}")),
    })
}

/// `l4proto` name as nft writes it.
pub fn l4(proto: &str) -> Expr {
    s(proto.to_ascii_lowercase())
}
