//! Go JSON presence rules of every field: is the Go field a pointer, does its json tag say
//! `omitempty`, is it `inline`. Neither the protobuf definitions nor the OpenAPI schema carry
//! this, yet it decides what Go's encoder writes for a zero value (`replicas: 0` is kept because
//! `Replicas` is `*int32`; `hostPort: 0` is dropped because `HostPort` is a plain `int32` with
//! `omitempty`). The facts are extracted from the Go type definitions once (`extract`) and kept
//! in `gen/go-presence.tsv`, which the generator reads (`parse_tsv`).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::Path;

/// One Go struct field that has a protobuf tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoField {
    pub number: u32,
    /// The json tag's name; empty for `json:",inline"`.
    pub json: String,
    pub pointer: bool,
    pub omitempty: bool,
    pub inline: bool,
}

/// Fields per protobuf message (full name), in Go declaration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GoPresence {
    pub messages: BTreeMap<String, Vec<GoField>>,
}

impl GoPresence {
    pub fn parse_tsv(text: &str) -> Result<Self> {
        let mut out = GoPresence::default();
        for (no, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let cols: Vec<&str> = line.split('\t').collect();
            let [message, number, json, flags] = cols[..] else {
                bail!(
                    "go-presence.tsv line {}: expected 4 tab-separated columns",
                    no + 1
                );
            };
            let number = number
                .parse()
                .with_context(|| format!("go-presence.tsv line {}: field number", no + 1))?;
            if flags.chars().any(|c| !"poi-".contains(c)) {
                bail!("go-presence.tsv line {}: unknown flag in {flags:?}", no + 1);
            }
            out.messages
                .entry(message.to_string())
                .or_default()
                .push(GoField {
                    number,
                    json: json.to_string(),
                    pointer: flags.contains('p'),
                    omitempty: flags.contains('o'),
                    inline: flags.contains('i'),
                });
        }
        Ok(out)
    }

    pub fn to_tsv(&self, header: &str) -> String {
        let mut out = String::from(header);
        for (message, fields) in &self.messages {
            for f in fields {
                let mut flags = String::new();
                if f.pointer {
                    flags.push('p');
                }
                if f.omitempty {
                    flags.push('o');
                }
                if f.inline {
                    flags.push('i');
                }
                if flags.is_empty() {
                    flags.push('-');
                }
                out.push_str(&format!("{message}\t{}\t{}\t{flags}\n", f.number, f.json));
            }
        }
        out
    }

    /// Reads the Go packages in `packages` (directory relative to `go_src`, protobuf package
    /// name) and records every struct field that carries a protobuf tag.
    pub fn extract(go_src: &Path, packages: &[(String, String)]) -> Result<Self> {
        let mut out = GoPresence::default();
        for (dir, proto_package) in packages {
            let dir = go_src.join(dir);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .with_context(|| format!("reading Go package {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    name.ends_with(".go")
                        && !name.ends_with("_test.go")
                        && !name.starts_with("zz_generated")
                        && !name.starts_with("generated.")
                        && !name.contains("swagger_doc")
                })
                .collect();
            files.sort();
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                parse_go_file(&text, proto_package, &mut out)
                    .with_context(|| format!("parsing {}", file.display()))?;
            }
        }
        Ok(out)
    }
}

fn parse_go_file(text: &str, proto_package: &str, out: &mut GoPresence) -> Result<()> {
    let mut current: Option<String> = None;
    for (no, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("type ") {
            if let Some(name) = rest.strip_suffix(" struct {") {
                current = Some(format!("{proto_package}.{}", name.trim()));
            }
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        let Some(message) = &current else { continue };
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("//") {
            continue;
        }
        if trimmed.ends_with("struct {") {
            bail!("line {}: anonymous nested struct in {message}", no + 1);
        }
        let (Some(open), Some(close)) = (trimmed.find('`'), trimmed.rfind('`')) else {
            continue;
        };
        if open == close {
            continue;
        }
        let decl: Vec<&str> = trimmed[..open].split_whitespace().collect();
        let tags = &trimmed[open + 1..close];
        let Some(protobuf) = tag_value(tags, "protobuf") else {
            continue;
        };
        if protobuf == "-" {
            continue;
        }
        let go_type = match decl[..] {
            [ty] => ty,
            [_name, ty] => ty,
            _ => bail!("line {}: cannot read field declaration {trimmed:?}", no + 1),
        };
        let number: u32 = protobuf
            .split(',')
            .nth(1)
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("line {}: protobuf tag {protobuf:?}", no + 1))?;
        let json = tag_value(tags, "json").unwrap_or_default();
        if json == "-" {
            continue;
        }
        let mut parts = json.split(',');
        let name = parts.next().unwrap_or_default().to_string();
        let options: Vec<&str> = parts.collect();
        let inline = options.contains(&"inline");
        out.messages
            .entry(message.clone())
            .or_default()
            .push(GoField {
                number,
                json: if inline { String::new() } else { name },
                pointer: go_type.starts_with('*'),
                omitempty: options.contains(&"omitempty"),
                inline,
            });
    }
    Ok(())
}

fn tag_value<'a>(tags: &'a str, key: &str) -> Option<&'a str> {
    let start = tags.find(&format!("{key}:\""))? + key.len() + 2;
    let len = tags[start..].find('"')?;
    Some(&tags[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pointer_omitempty_and_inline_fields() {
        let src = "package v1\n\ntype Volume struct {\n\t// doc with `quotes`\n\tName string `json:\"name\" protobuf:\"bytes,1,opt,name=name\"`\n\tVolumeSource `json:\",inline\" protobuf:\"bytes,2,opt,name=volumeSource\"`\n\tReplicas *int32 `json:\"replicas,omitempty\" protobuf:\"varint,3,opt,name=replicas\"`\n\tmetav1.TypeMeta `json:\",inline\"`\n}\n";
        let mut out = GoPresence::default();
        parse_go_file(src, "io.k8s.api.core.v1", &mut out).unwrap();
        let fields = &out.messages["io.k8s.api.core.v1.Volume"];
        assert_eq!(fields.len(), 3);
        assert_eq!(
            (
                fields[0].json.as_str(),
                fields[0].pointer,
                fields[0].omitempty
            ),
            ("name", false, false)
        );
        assert!(fields[1].inline && fields[1].json.is_empty() && fields[1].number == 2);
        assert!(fields[2].pointer && fields[2].omitempty);
        let tsv = out.to_tsv("# h\n");
        assert_eq!(GoPresence::parse_tsv(&tsv).unwrap(), out);
    }
}
