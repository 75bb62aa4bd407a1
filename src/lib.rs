//! stageflow: a sales-pipeline (CRM) backend.

pub mod analytics;
pub mod auth;
pub mod config;
pub mod crm;
pub mod demo;
pub mod domain;
pub mod error;
pub mod http;
pub mod imports;
pub mod integrations;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;

// The keyset-pagination macro, crate-private (see storage/mod.rs for why it is a macro).
pub(crate) use storage::keyset;

/// The layers stay a stack: no two top-level modules refer to each other, directly or
/// through others (see docs/architecture.md).
#[cfg(test)]
mod layering {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn references() -> BTreeMap<String, BTreeSet<String>> {
        fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
            for entry in std::fs::read_dir(dir).expect("src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    out.push(path);
                }
            }
        }
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        walk(&src, &mut files);
        let module_of = |p: &Path| -> String {
            let rel = p.strip_prefix(&src).expect("under src");
            let first = rel.components().next().expect("a component");
            first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned()
        };
        let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
        let mut refs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for file in &files {
            let from = module_of(file);
            if from == "lib" || from == "main" {
                continue;
            }
            let text = std::fs::read_to_string(file).expect("source");
            for (at, _) in text.match_indices("crate::") {
                let to: String = text[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if to != from && modules.contains(&to) {
                    refs.entry(from.clone()).or_default().insert(to);
                }
            }
        }
        refs
    }

    #[test]
    fn top_level_modules_have_no_cycles() {
        let refs = references();
        // Depth-first search for a path back to the start from each module.
        for start in refs.keys() {
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in refs.get(&at).into_iter().flatten() {
                    assert!(
                        next != start,
                        "module cycle: {} -> {next}",
                        path.join(" -> ")
                    );
                    if seen.insert(next.clone()) {
                        let mut longer = path.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
        }
        assert!(refs.get("storage").is_some_and(|s| !s.contains("auth")));
        for inner in ["crm", "domain", "storage", "analytics"] {
            assert!(
                refs.get(inner).is_none_or(|r| !r.contains("http")),
                "{inner} refers to http"
            );
        }
        // The error vocabulary is the bottom of the stack.
        assert_eq!(refs.get("error"), None, "error refers to other modules");
    }

    /// Only http (and startup) know the web framework; the domain knows no SQL either.
    #[test]
    fn workflows_and_domain_know_no_framework() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (dir, banned) in [
            ("crm", &["actix"][..]),
            ("domain", &["actix", "diesel"][..]),
            ("auth", &["actix"][..]),
            ("storage", &["actix"][..]),
            ("analytics", &["actix"][..]),
        ] {
            for entry in std::fs::read_dir(src.join(dir)).expect("dir").flatten() {
                let text = std::fs::read_to_string(entry.path()).expect("source");
                for word in banned {
                    assert!(
                        !text.contains(word),
                        "{} mentions {word}",
                        entry.path().display()
                    );
                }
            }
        }
    }
}
