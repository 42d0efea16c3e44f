//! Stable-Rust fuzzing of the manifest loader and the preview differ (issue 7, part 6): a
//! seeded random-mutation loop over the committed corpus in `fuzz/corpus/`. It runs as a
//! normal test (`cargo test --test it fuzz`, a bounded number of iterations) and longer with
//! `KUBESYNC_FUZZ_ITERS=100000 cargo test --release --test it fuzz -- --nocapture`
//! (`KUBESYNC_FUZZ_SEED` picks another seed). Compiled into the `it` test binary through a
//! `#[path]` module.
//!
//! Properties: `manifest::load` never panics and returns `Ok` or structured errors (each
//! naming the file, a document and a line ≥ 1) within a time budget; for every mutant that
//! loads, `plan::compare` against every seed and the text/JSON/Markdown preview renderers
//! never panic, stay within the budget, and never print a Secret value of the mutant.
//!
//! Owns: the mutation engine and the two targets. Must not: use nightly features or
//! cargo-fuzz, or read anything outside `fuzz/corpus/`.
use kubesync::manifest::{self, LoadOptions, Object};
use kubesync::plan::{self, Preview};
use kubesync::report as render;
use kubesync::source::{Commit, File, Snapshot};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Wall-clock budget of one target call on one input: a hang detector sized for a debug
/// build on a loaded 2-core CI machine (the slowest hostile input, 100,000-deep flow nesting, takes ~1.2 s alone).
const BUDGET: Duration = Duration::from_secs(15);

/// Tokens spliced into inputs: YAML syntax that stresses the parser.
const DICTIONARY: &[&str] = &[
    "&a ",
    "*a",
    "<<: *a\n",
    "[",
    "]",
    "{",
    "}",
    "---\n",
    "...\n",
    ": ",
    "- ",
    "? ",
    "|\n  ",
    ">-\n  ",
    "!!binary ",
    "!!str ",
    "!!map ",
    "!custom ",
    "\t",
    "\"",
    "'",
    "#",
    "%YAML 1.2\n",
    "kind: ",
    "apiVersion: v1\n",
    "metadata:\n  name: x\n",
    "namespace: ",
    "\u{feff}",
    "\0",
    "é",
    "\u{10ffff}",
    "~",
    "null",
    "1e999",
    "-0",
    "0x",
    "9999999999999999999999",
    "\r\n",
    "kind: Secret\n",
    "kind: Deployment\n",
    "kind: List\nitems:\n  - ",
    "stringData: {p: q}\n",
    "replicas: ",
    "template:\n",
    "maxSurge: ",
    "    ",
];

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// The committed seeds: (file name, bytes).
pub fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fuzz/corpus exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&p).expect("read seed");
            (name, bytes)
        })
        .collect();
    out.sort();
    out
}

/// One to four random edits of `input`.
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let token = DICTIONARY[rng.below(DICTIONARY.len())].as_bytes();
                let at = rng.below(len + 1);
                out.splice(at..at, token.iter().copied());
            }
            2 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(32)).min(len);
                out.drain(at..end);
            }
            3 if len > 0 => {
                // Duplicate a range (repeats keys, documents, nesting).
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                let chunk: Vec<u8> = out[at..end].to_vec();
                let to = rng.below(len + 1);
                out.splice(to..to, chunk);
            }
            4 => {
                // Splice part of another seed.
                let other = &corpus[rng.below(corpus.len())].1;
                if !other.is_empty() {
                    let at = rng.below(other.len());
                    let end = (at + 1 + rng.below(128)).min(other.len());
                    let to = rng.below(len + 1);
                    out.splice(to..to, other[at..end].iter().copied());
                }
            }
            5 if len > 0 => {
                // Change the indentation of a line.
                let at = rng.below(len);
                let spaces = if rng.below(2) == 0 { 1 } else { 2 };
                out.splice(at..at, std::iter::repeat_n(b' ', spaces));
            }
            6 if len > 0 => {
                // Truncate.
                out.truncate(rng.below(len));
            }
            _ => {
                let byte = (rng.next() & 0xff) as u8;
                let at = rng.below(len + 1);
                out.insert(at, byte);
            }
        }
    }
    out
}

fn commit(n: u8) -> Commit {
    Commit {
        sha: format!("{n:02x}").repeat(20),
        subject: "fuzz".into(),
        time: 1_700_000_000,
    }
}

fn snapshot(path: &str, bytes: Vec<u8>, n: u8) -> Snapshot {
    Snapshot {
        commit: commit(n),
        files: vec![File {
            path: path.into(),
            bytes,
        }],
    }
}

/// Target 1: the loader. `Err` describes a panic or a broken property.
pub fn load_target(path: &str, bytes: &[u8]) -> Result<Option<Vec<Object>>, String> {
    let snap = snapshot(path, bytes.to_vec(), 2);
    let started = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| {
        manifest::load(&snap, &LoadOptions::default())
    }))
    .map_err(|_| "manifest::load panicked".to_string())?;
    if started.elapsed() > BUDGET {
        return Err(format!("manifest::load took {:?}", started.elapsed()));
    }
    match result {
        Ok(objects) => Ok(Some(objects)),
        Err(errors) => {
            let list = &errors.errors;
            if list.is_empty() {
                return Err("load failed with an empty error list".into());
            }
            for e in list {
                if e.file != path || e.line == 0 || e.message.is_empty() {
                    return Err(format!("unstructured load error: {e:?}"));
                }
            }
            Ok(None)
        }
    }
}

fn is_core_secret(o: &Object) -> bool {
    o.body["kind"] == "Secret" && o.body["apiVersion"] == "v1"
}

/// The `data`/`stringData` string values of the core v1 Secrets in `objects` that are long
/// enough to search for and do not also appear in a public place (another object, or a
/// Secret's other fields), where printing them is expected.
fn secret_values(all: &[&[Object]]) -> Vec<String> {
    let mut values = Vec::new();
    let mut public = String::new();
    for objects in all {
        for o in objects.iter() {
            let mut rest = o.body.clone();
            if is_core_secret(o) {
                for field in ["data", "stringData"] {
                    if let Some(map) = o.body[field].as_object() {
                        values.extend(
                            map.values()
                                .filter_map(|v| v.as_str())
                                .filter(|v| v.len() >= 12)
                                .map(str::to_string),
                        );
                    }
                    if let Some(m) = rest.as_object_mut() {
                        m.remove(field);
                    }
                }
            }
            public.push_str(&rest.to_string());
            public.push('\n');
        }
    }
    values.retain(|v| !public.contains(v.as_str()));
    values
}

/// Target 2: the preview differ and its renderers, from `base` to `head` and back.
pub fn preview_target(base: &[Object], head: &[Object]) -> Result<(), String> {
    let started = Instant::now();
    let secrets = secret_values(&[base, head]);
    for (a, b) in [(base, head), (head, base)] {
        let outputs = catch_unwind(AssertUnwindSafe(|| {
            let preview = Preview {
                base: commit(1),
                head: commit(2),
                changes: plan::compare(a, b),
            };
            [
                render::text(&preview),
                render::json(&preview).to_string(),
                render::markdown(&preview, 60_000),
            ]
        }))
        .map_err(|_| "plan::compare or a preview renderer panicked".to_string())?;
        for (i, text) in outputs.iter().enumerate() {
            if let Some(s) = secrets.iter().find(|s| text.contains(s.as_str())) {
                return Err(format!(
                    "renderer {i} printed a Secret value ({} bytes)",
                    s.len()
                ));
            }
        }
    }
    if started.elapsed() > BUDGET {
        return Err(format!("the preview took {:?}", started.elapsed()));
    }
    Ok(())
}

/// What one fuzz run did.
#[derive(Debug, Default)]
pub struct Stats {
    pub iterations: u64,
    pub loaded: u64,
    pub rejected: u64,
    pub previews: u64,
}

/// Runs `iterations` mutants from `seed`; `Err` names the failing input (escaped).
pub fn run(seed: u64, iterations: u64) -> Result<Stats, String> {
    let corpus = corpus();
    assert!(corpus.len() >= 5, "the corpus has {} seeds", corpus.len());
    let mut rng = Rng(seed);
    let mut stats = Stats::default();
    // The seeds themselves load (so the differ always has a base).
    let mut bases = Vec::new();
    for (name, bytes) in &corpus {
        match load_target(&format!("apps/{name}"), bytes)? {
            Some(objects) => bases.push(objects),
            None => {
                let snap = snapshot(&format!("apps/{name}"), bytes.clone(), 2);
                let errors = manifest::load(&snap, &LoadOptions::default()).err();
                return Err(format!("seed {name} does not load: {errors:?}"));
            }
        }
    }
    for i in 0..iterations {
        let (name, seed_bytes) = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, seed_bytes, &corpus);
        let path = format!("apps/{name}");
        let fail = |why: String| {
            format!(
                "iteration {i} (seed {seed}) from {name}: {why}\ninput: {:?}",
                String::from_utf8_lossy(&input)
            )
        };
        stats.iterations += 1;
        match load_target(&path, &input).map_err(fail)? {
            Some(objects) => {
                stats.loaded += 1;
                let base = &bases[rng.below(bases.len())];
                preview_target(base, &objects).map_err(fail)?;
                stats.previews += 1;
            }
            None => stats.rejected += 1,
        }
    }
    Ok(stats)
}

#[test]
fn fuzz_loader_and_preview_differ() {
    let iterations = std::env::var("KUBESYNC_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500);
    let seed = std::env::var("KUBESYNC_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x00f0_220e);
    let stats = run(seed, iterations).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("fuzz: {stats:?}");
    assert_eq!(stats.iterations, iterations);
    assert!(stats.loaded > 0 && stats.rejected > 0, "{stats:?}");
}

#[test]
fn fuzz_hostile_inputs_are_rejected_within_budget() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..16 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        ("alias bomb", bomb.into_bytes()),
        (
            "deep flow",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
        ),
        (
            "deep block",
            (0..5000)
                .map(|i| format!("{}- \n", " ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
        ),
        (
            "deep map",
            (0..5000)
                .map(|i| format!("{}k:\n", " ".repeat(i)))
                .collect::<String>()
                .into_bytes(),
        ),
        ("many docs", "---\n".repeat(200_000).into_bytes()),
        ("nul bytes", vec![0; 4096]),
        ("invalid utf-8", vec![0xff, 0xfe, 0xfd, b'\n', 0xc3]),
        (
            "long line",
            "k: "
                .bytes()
                .chain(std::iter::repeat_n(b'x', 3 << 20))
                .collect(),
        ),
    ];
    for (what, bytes) in hostile {
        let started = Instant::now();
        let got =
            load_target("apps/hostile.yaml", &bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
        // None of these is a valid manifest: rejected, or (empty documents) nothing loaded.
        assert!(
            got.is_none_or(|objects| objects.is_empty()),
            "{what}: loaded"
        );
        eprintln!("hostile {what}: rejected in {:?}", started.elapsed());
    }
}
