//! Container logs in the CRI format (`<RFC 3339 time> <stdout|stderr> <P|F> <text>`, one
//! record per line, `P` for a partial line), as the shim writes them with size rotation
//! (`0.log`, `0.log.1`, ...). Serves `kubectl logs`: `tailLines`, `sinceSeconds`/`sinceTime`,
//! `timestamps`, `limitBytes`, and `follow` (polling the live file across rotations until the
//! container stops).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

/// One record of a CRI log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    /// The line is complete (`F`): a newline follows the text.
    pub full: bool,
    pub text: &'a [u8],
}

/// Parses one line (without its newline) of a CRI log.
pub fn parse(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or(b"");
    Some(Record {
        time,
        stream,
        full: tag != b"P",
        text,
    })
}

/// How to read a log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub follow: bool,
    pub timestamps: bool,
    pub tail_lines: Option<u64>,
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<u64>,
}

/// The files of a log, oldest first (rotated ones, then the live one).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let prefix = format!("{}.", name.to_string_lossy());
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(k) = n.strip_prefix(&prefix).and_then(|k| k.parse::<u32>().ok()) {
                rotated.push((k, e.path()));
            }
        }
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    out.push(path.to_path_buf());
    out
}

/// Renders records as `kubectl logs` prints them.
struct Renderer {
    timestamps: bool,
    since: Option<jiff::Timestamp>,
    /// Whether the next record starts a line.
    at_line_start: bool,
}

impl Renderer {
    fn render(&mut self, r: &Record<'_>, out: &mut Vec<u8>) {
        if let Some(s) = self.since
            && r.time.parse::<jiff::Timestamp>().is_ok_and(|t| t < s)
        {
            return;
        }
        if self.timestamps && self.at_line_start {
            out.extend_from_slice(r.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.text);
        if r.full {
            out.push(b'\n');
        }
        self.at_line_start = r.full;
    }
}

/// The last `lines` lines of a log as plain text, at most `max_bytes` (termination messages).
pub fn tail_text(path: &Path, lines: usize, max_bytes: usize) -> String {
    let mut all = Vec::new();
    for f in files(path) {
        if let Ok(b) = std::fs::read(&f) {
            all.extend_from_slice(&b);
        }
    }
    let mut r = Renderer {
        timestamps: false,
        since: None,
        at_line_start: true,
    };
    let mut out = Vec::new();
    for line in all.split(|b| *b == b'\n') {
        if let Some(rec) = parse(line) {
            r.render(&rec, &mut out);
        }
    }
    let text = String::from_utf8_lossy(&out).into_owned();
    let v: Vec<&str> = text.lines().collect();
    let mut t = v[v.len().saturating_sub(lines)..].join("\n");
    if t.len() > max_bytes {
        let mut cut = t.len() - max_bytes;
        while !t.is_char_boundary(cut) {
            cut += 1;
        }
        t = t[cut..].to_string();
    }
    t
}

/// Renders the existing content of a log per `opts` (tail, since, timestamps); returns the
/// text and where the live file ended.
pub fn read_existing(path: &Path, opts: &LogOptions) -> (Vec<u8>, u64) {
    let mut raw = Vec::new();
    let mut live_len = 0;
    for f in files(path) {
        if let Ok(b) = std::fs::read(&f) {
            if f == path {
                live_len = b.len() as u64;
            }
            raw.extend_from_slice(&b);
        }
    }
    // Only complete lines are records; a trailing fragment is read on the next poll.
    let complete = raw.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let pending = (raw.len() - complete) as u64;
    let mut records: Vec<Record<'_>> = raw[..complete]
        .split(|b| *b == b'\n')
        .filter_map(parse)
        .collect();
    if let Some(n) = opts.tail_lines {
        // Keep the records of the last n lines (a line may span partial records).
        let mut lines = 0u64;
        let mut start = records.len();
        while start > 0 {
            if records[start - 1].full {
                if lines == n {
                    break;
                }
                lines += 1;
            }
            start -= 1;
        }
        records.drain(..start);
    }
    let mut r = Renderer {
        timestamps: opts.timestamps,
        since: opts.since,
        at_line_start: true,
    };
    let mut out = Vec::new();
    for rec in &records {
        r.render(rec, &mut out);
    }
    (out, live_len.saturating_sub(pending))
}

/// Streams a log into `tx` per `opts`. With `follow`, polls the live file until `running`
/// reports the container stopped (and everything it wrote was sent) or the receiver is gone.
pub async fn stream<F, Fut>(path: PathBuf, opts: LogOptions, tx: mpsc::Sender<Bytes>, running: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut left = opts.limit_bytes.unwrap_or(u64::MAX);
    let send = |mut b: Vec<u8>, left: &mut u64| {
        if b.len() as u64 > *left {
            b.truncate(*left as usize);
        }
        *left -= b.len() as u64;
        b
    };
    let (first, mut offset) = {
        let (p, o) = (path.clone(), opts.clone());
        tokio::task::spawn_blocking(move || read_existing(&p, &o))
            .await
            .unwrap_or_default()
    };
    if !first.is_empty() && tx.send(Bytes::from(send(first, &mut left))).await.is_err() {
        return;
    }
    if !opts.follow || left == 0 {
        return;
    }
    let mut renderer = Renderer {
        timestamps: opts.timestamps,
        since: opts.since,
        at_line_start: true,
    };
    let mut ino = inode(&path);
    let mut carry: Vec<u8> = Vec::new();
    let mut idle_checks = 0u32;
    loop {
        // Rotation: the live file was renamed away and a new one created.
        let now_ino = inode(&path);
        if now_ino != ino {
            let rotated = path.with_file_name(format!(
                "{}.1",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ));
            let rest = read_from(&rotated, offset);
            carry.extend_from_slice(&rest);
            offset = 0;
            ino = now_ino;
        }
        let new = read_from(&path, offset);
        offset += new.len() as u64;
        carry.extend_from_slice(&new);
        let complete = carry.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete > 0 {
            let mut out = Vec::new();
            for line in carry[..complete].split(|b| *b == b'\n') {
                if let Some(rec) = parse(line) {
                    renderer.render(&rec, &mut out);
                }
            }
            carry.drain(..complete);
            if !out.is_empty() {
                idle_checks = 0;
                if tx.send(Bytes::from(send(out, &mut left))).await.is_err() || left == 0 {
                    return;
                }
            }
            continue;
        }
        if tx.is_closed() {
            return;
        }
        idle_checks += 1;
        if idle_checks.is_multiple_of(10) && !running().await {
            // One last read: the container may have written just before exiting.
            let tail = read_from(&path, offset);
            if tail.is_empty() {
                return;
            }
            continue;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn inode(p: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map(|m| m.ino()).unwrap_or(0)
}

fn read_from(p: &Path, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    if let Ok(mut f) = std::fs::File::open(p)
        && f.seek(SeekFrom::Start(offset)).is_ok()
    {
        let _ = f.read_to_end(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:01.000000001Z stdout F one\n\
2026-01-01T00:00:02.000000001Z stderr P tw\n\
2026-01-01T00:00:02.000000002Z stderr F o\n\
2026-01-01T00:00:03.000000001Z stdout F three\n";

    #[test]
    fn renders_tail_since_and_timestamps() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(&p, LOG).unwrap();
        let (all, off) = read_existing(&p, &LogOptions::default());
        assert_eq!(String::from_utf8(all).unwrap(), "one\ntwo\nthree\n");
        assert_eq!(off, LOG.len() as u64);
        let tail = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(read_existing(&p, &tail).0).unwrap(),
            "two\nthree\n"
        );
        let since = LogOptions {
            since: Some("2026-01-01T00:00:02Z".parse().unwrap()),
            timestamps: true,
            ..Default::default()
        };
        assert_eq!(
            String::from_utf8(read_existing(&p, &since).0).unwrap(),
            "2026-01-01T00:00:02.000000001Z two\n2026-01-01T00:00:03.000000001Z three\n"
        );
        let none = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert!(read_existing(&p, &none).0.is_empty());
    }

    #[test]
    fn rotated_files_come_first() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(
            d.path().join("0.log.2"),
            "2026-01-01T00:00:00Z stdout F a\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("0.log.1"),
            "2026-01-01T00:00:01Z stdout F b\n",
        )
        .unwrap();
        std::fs::write(&p, "2026-01-01T00:00:02Z stdout F c\n").unwrap();
        assert_eq!(
            String::from_utf8(read_existing(&p, &LogOptions::default()).0).unwrap(),
            "a\nb\nc\n"
        );
        assert_eq!(tail_text(&p, 2, 100), "b\nc");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn follow_streams_new_lines_until_stopped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("0.log");
        std::fs::write(&p, "2026-01-01T00:00:00Z stdout F a\n").unwrap();
        let (tx, mut rx) = mpsc::channel(8);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r2 = running.clone();
        let path = p.clone();
        let task = tokio::spawn(async move {
            stream(
                path,
                LogOptions {
                    follow: true,
                    ..Default::default()
                },
                tx,
                move || {
                    let r = r2.clone();
                    async move { r.load(std::sync::atomic::Ordering::SeqCst) }
                },
            )
            .await
        });
        let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&first[..], b"a\n");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"2026-01-01T00:00:01Z stdout F b\n").unwrap();
        let next = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&next[..], b"b\n");
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .unwrap()
            .unwrap();
    }
}
