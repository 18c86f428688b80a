//! One nftables table per node, rewritten atomically.
//!
//! A [`Ruleset`] is the table's whole desired content. [`NftTable::apply`] turns it into one
//! `nft -j -f -` transaction. The first one (or after a failure, when the kernel's state is
//! unknown) rewrites everything: ensure the table, flush every rule, delete the chains and
//! sets the ruleset no longer has, add the rest. After that, a transaction touches only what
//! differs from the ruleset last applied (flush and refill changed chains and sets, add new
//! ones, delete dropped ones), so an endpoint change costs a few rules, not the whole table.
//! Either way the kernel applies the transaction all at once or not at all, so packets see
//! either the old rules or the new ones. Named sets survive a flush with their elements,
//! which is how ClientIP affinity outlives rewrites.

pub mod expr;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap, HashSet};

use nftables::batch::Batch;
use nftables::schema::{self, FlushObject, NfCmd, NfListObject, Nftables, SetTypeValue};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::error::{NetError, Result};
use expr::{Expr, Stmt};

/// A chain and its rules, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainSpec {
    pub name: String,
    /// Base chains: type, hook, priority.
    pub base: Option<(NfChainType, NfHook, i32)>,
    pub rules: Vec<Vec<Stmt>>,
}

impl ChainSpec {
    pub fn regular(name: impl Into<String>) -> ChainSpec {
        ChainSpec {
            name: name.into(),
            base: None,
            rules: Vec::new(),
        }
    }

    pub fn base(name: impl Into<String>, ty: NfChainType, hook: NfHook, prio: i32) -> ChainSpec {
        ChainSpec {
            name: name.into(),
            base: Some((ty, hook, prio)),
            rules: Vec::new(),
        }
    }

    pub fn rule(&mut self, stmts: Vec<Stmt>) -> &mut Self {
        self.rules.push(stmts);
        self
    }
}

/// A named set.
#[derive(Debug, Clone, PartialEq)]
pub struct SetSpec {
    pub name: String,
    pub set_type: SetTypeValue<'static>,
    pub flags: Vec<schema::SetFlag>,
    pub timeout: Option<u32>,
    /// `Some`: the set's elements are exactly these; `None`: the packet path fills it
    /// (affinity), the rewrite keeps its elements.
    pub elements: Option<Vec<Expr>>,
}

/// The whole desired content of the table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ruleset {
    pub chains: Vec<ChainSpec>,
    pub sets: Vec<SetSpec>,
}

impl Ruleset {
    pub fn chain_mut(&mut self, name: &str) -> Option<&mut ChainSpec> {
        self.chains.iter_mut().find(|c| c.name == name)
    }

    pub fn rule_count(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }
}

/// Names of what the table holds (to delete what a new ruleset drops).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Present {
    chains: BTreeSet<String>,
    sets: BTreeSet<String>,
}

/// The node's table.
pub struct NftTable {
    family: NfFamily,
    name: String,
    present: Option<Present>,
    /// The ruleset the kernel's table is known to hold exactly (the last applied).
    applied: Option<Ruleset>,
}

impl NftTable {
    /// The `ip` table `name` (nothing is read or written yet).
    pub fn new(name: &str) -> NftTable {
        NftTable {
            family: NfFamily::IP,
            name: name.to_string(),
            present: None,
            applied: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn table(&self) -> schema::Table<'static> {
        schema::Table {
            family: self.family,
            name: Cow::Owned(self.name.clone()),
            handle: None,
        }
    }

    /// Reads which chains and sets the kernel's table has now (none if it does not exist).
    async fn read_present(&self) -> Result<Present> {
        let out = run_nft(&["-j", "list", "table", "ip", &self.name], None).await;
        let text = match out {
            Ok(text) => text,
            Err(NetError::Nft { message, .. }) if message.contains("No such file or directory") => {
                return Ok(Present::default());
            }
            Err(e) => return Err(e),
        };
        // Only names are needed: read the listing loosely (rules may use forms the typed
        // schema does not cover).
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| NetError::Nft {
            op: "reading the table",
            message: format!("unexpected `nft -j` output: {e}"),
        })?;
        let mut p = Present::default();
        for o in v
            .get("nftables")
            .and_then(|x| x.as_array())
            .into_iter()
            .flatten()
        {
            let name = |k: &str| {
                o.get(k)
                    .and_then(|c| c.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_string)
            };
            if let Some(c) = name("chain") {
                p.chains.insert(c);
            } else if let Some(s) = name("set").or_else(|| name("map")) {
                p.sets.insert(s);
            }
        }
        Ok(p)
    }

    /// The transaction that makes the table exactly `rs`.
    fn transaction(&self, present: &Present, rs: &Ruleset) -> Nftables<'static> {
        let mut b = Batch::new();
        b.add(NfListObject::Table(self.table()));
        b.add_cmd(NfCmd::Flush(FlushObject::Table(self.table())));
        let want_chains: HashSet<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
        let want_sets: HashSet<&str> = rs.sets.iter().map(|s| s.name.as_str()).collect();
        for name in present
            .chains
            .iter()
            .filter(|c| !want_chains.contains(c.as_str()))
        {
            b.delete(NfListObject::Chain(self.named_chain(name)));
        }
        for name in present
            .sets
            .iter()
            .filter(|s| !want_sets.contains(s.as_str()))
        {
            b.delete(NfListObject::Set(Box::new(schema::Set {
                family: self.family,
                table: Cow::Owned(self.name.clone()),
                name: Cow::Owned(name.clone()),
                ..Default::default()
            })));
        }
        for c in &rs.chains {
            b.add(self.chain_obj(&c.name, c.base));
        }
        for s in &rs.sets {
            // A set the packet path fills exists with the flags nft gave it when a rule first
            // updated it; adding it again would conflict, and it must keep its elements.
            if s.elements.is_none() && present.sets.contains(&s.name) {
                continue;
            }
            let set = self.set_obj(s);
            b.add(NfListObject::Set(Box::new(set.clone())));
            self.refill_set(&mut b, s, set);
        }
        for c in &rs.chains {
            self.add_rules(&mut b, c);
        }
        b.to_nftables()
    }

    fn chain_obj(
        &self,
        name: &str,
        base: Option<(NfChainType, NfHook, i32)>,
    ) -> NfListObject<'static> {
        let (ty, hook, prio) = match base {
            Some((t, h, p)) => (Some(t), Some(h), Some(p)),
            None => (None, None, None),
        };
        NfListObject::Chain(schema::Chain {
            family: self.family,
            table: Cow::Owned(self.name.clone()),
            name: Cow::Owned(name.to_string()),
            _type: ty,
            hook,
            prio,
            policy: base.map(|_| NfChainPolicy::Accept),
            ..Default::default()
        })
    }

    /// A chain of this table by name only (to flush or delete it).
    fn named_chain(&self, name: &str) -> schema::Chain<'static> {
        schema::Chain {
            family: self.family,
            table: Cow::Owned(self.name.clone()),
            name: Cow::Owned(name.to_string()),
            ..Default::default()
        }
    }

    /// Empties `set` and adds `s`'s elements (sets the packet path fills are left alone).
    fn refill_set(&self, b: &mut Batch<'static>, s: &SetSpec, set: schema::Set<'static>) {
        let Some(elems) = &s.elements else {
            return;
        };
        b.add_cmd(NfCmd::Flush(FlushObject::Set(Box::new(set))));
        if !elems.is_empty() {
            b.add(NfListObject::Element(schema::Element {
                family: self.family,
                table: Cow::Owned(self.name.clone()),
                name: Cow::Owned(s.name.clone()),
                elem: Cow::Owned(elems.clone()),
            }));
        }
    }

    /// Appends `c`'s rules, in order.
    fn add_rules(&self, b: &mut Batch<'static>, c: &ChainSpec) {
        for r in &c.rules {
            b.add(NfListObject::Rule(schema::Rule {
                family: self.family,
                table: Cow::Owned(self.name.clone()),
                chain: Cow::Owned(c.name.clone()),
                expr: Cow::Owned(r.clone()),
                ..Default::default()
            }));
        }
    }

    fn set_obj(&self, s: &SetSpec) -> schema::Set<'static> {
        schema::Set {
            family: self.family,
            table: Cow::Owned(self.name.clone()),
            name: Cow::Owned(s.name.clone()),
            set_type: s.set_type.clone(),
            flags: if s.flags.is_empty() {
                None
            } else {
                Some(s.flags.iter().copied().collect())
            },
            timeout: s.timeout,
            ..Default::default()
        }
    }

    /// The transaction that turns the table from exactly `last` into exactly `rs`, touching
    /// only what differs; `None` when a difference needs the full rewrite (a base chain's
    /// hook or a set's definition changed).
    fn changes(&self, last: &Ruleset, rs: &Ruleset) -> Option<Nftables<'static>> {
        let old_chains: HashMap<&str, &ChainSpec> =
            last.chains.iter().map(|c| (c.name.as_str(), c)).collect();
        let old_sets: HashMap<&str, &SetSpec> =
            last.sets.iter().map(|s| (s.name.as_str(), s)).collect();
        let want_chains: HashSet<&str> = rs.chains.iter().map(|c| c.name.as_str()).collect();
        let want_sets: HashSet<&str> = rs.sets.iter().map(|s| s.name.as_str()).collect();
        let mut fill: Vec<&ChainSpec> = Vec::new();
        let mut b = Batch::new();
        b.add(NfListObject::Table(self.table()));
        // 1. Empty the chains that change or go (dropping their references first).
        for c in &rs.chains {
            match old_chains.get(c.name.as_str()) {
                Some(o) if *o == c => {}
                Some(o) if o.base != c.base => return None,
                Some(_) => {
                    b.add_cmd(NfCmd::Flush(FlushObject::Chain(self.named_chain(&c.name))));
                    fill.push(c);
                }
                None => fill.push(c),
            }
        }
        let dropped: Vec<&str> = last
            .chains
            .iter()
            .map(|c| c.name.as_str())
            .filter(|n| !want_chains.contains(n))
            .collect();
        for name in &dropped {
            b.add_cmd(NfCmd::Flush(FlushObject::Chain(self.named_chain(name))));
        }
        // 2. Delete what goes, now unreferenced.
        for name in &dropped {
            b.delete(NfListObject::Chain(self.named_chain(name)));
        }
        for s in last
            .sets
            .iter()
            .filter(|s| !want_sets.contains(s.name.as_str()))
        {
            b.delete(NfListObject::Set(Box::new(self.set_obj(s))));
        }
        // 3. New chains, new and changed sets.
        for c in &fill {
            if !old_chains.contains_key(c.name.as_str()) {
                b.add(self.chain_obj(&c.name, c.base));
            }
        }
        for s in &rs.sets {
            let set = self.set_obj(s);
            match old_sets.get(s.name.as_str()) {
                Some(o) if *o == s => continue,
                Some(o)
                    if o.set_type != s.set_type || o.flags != s.flags || o.timeout != s.timeout =>
                {
                    return None;
                }
                Some(_) => {}
                None => b.add(NfListObject::Set(Box::new(set.clone()))),
            }
            self.refill_set(&mut b, s, set);
        }
        // 4. The rules of new and changed chains.
        for c in fill {
            self.add_rules(&mut b, c);
        }
        Some(b.to_nftables())
    }

    /// Makes the kernel's table exactly `rs`, in one transaction.
    pub async fn apply(&mut self, rs: &Ruleset) -> Result<()> {
        let present = match self.present.take() {
            Some(p) => p,
            None => self.read_present().await?,
        };
        let last = self.applied.take();
        let tx = match last.as_ref().and_then(|l| self.changes(l, rs)) {
            Some(tx) => tx,
            None => self.transaction(&present, rs),
        };
        match run_json(&tx).await {
            Ok(()) => {
                self.present = Some(Present {
                    chains: rs.chains.iter().map(|c| c.name.clone()).collect(),
                    sets: rs.sets.iter().map(|s| s.name.clone()).collect(),
                });
                self.applied = Some(rs.clone());
                Ok(())
            }
            Err(e) => {
                // Unknown state: read it again and rewrite everything next time.
                self.present = None;
                Err(e)
            }
        }
    }

    /// Removes the table (and with it every rule and set berth made).
    pub async fn delete(&mut self) -> Result<()> {
        self.present = None;
        self.applied = None;
        let mut b = Batch::new();
        // `add` first so that deleting a missing table is not an error.
        b.add(NfListObject::Table(self.table()));
        b.delete(NfListObject::Table(self.table()));
        run_json(&b.to_nftables()).await
    }

    /// The table as `nft list` prints it (for logs and tests).
    pub async fn list_text(&self) -> Result<String> {
        run_nft(&["list", "table", "ip", &self.name], None).await
    }
}

/// Applies a JSON batch with `nft -j -f -`.
async fn run_json(batch: &Nftables<'_>) -> Result<()> {
    let payload = serde_json::to_string(batch).map_err(|e| NetError::Internal(e.to_string()))?;
    run_nft(&["-j", "-f", "-"], Some(payload)).await.map(|_| ())
}

/// Runs `nft` with `args` (and `stdin`), returning stdout; failures carry nft's message.
async fn run_nft(args: &[&str], stdin: Option<String>) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| NetError::io("running (is the nftables package installed?)", "nft", e))?;
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input.as_bytes())
            .await
            .map_err(|e| NetError::io("writing to", "nft", e))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| NetError::io("waiting for", "nft", e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Nft {
            op: "nft",
            message: format!(
                "`nft {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}
