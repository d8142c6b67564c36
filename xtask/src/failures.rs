//! The failed tests of a run, with the end of what each printed, so the summary at the bottom of a
//! long log says which test failed and why without scrolling back through thousands of lines.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many of a failed test's last output lines the summary repeats.
const EXCERPT_LINES: usize = 30;

/// One failed test: its name and the end of its captured output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub name: String,
    pub excerpt: Vec<String>,
}

/// Reads libtest's output line by line and collects the failed tests.
///
/// libtest reports `test NAME ... FAILED` as each test ends, then, after all of them, a block per
/// failed test opened by `---- NAME stdout ----` holding what it printed and its panic message.
#[derive(Debug, Default)]
pub struct FailureReader {
    failures: Vec<Failure>,
    /// The block being read: index into `failures` and its last lines so far.
    open: Option<(usize, VecDeque<String>)>,
}

impl FailureReader {
    pub fn line(&mut self, line: &str) {
        if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.strip_suffix(" ... FAILED"))
        {
            self.index_of(name);
            return;
        }
        if let Some(name) = line
            .strip_prefix("---- ")
            .and_then(|rest| rest.strip_suffix(" stdout ----"))
        {
            self.close();
            let at = self.index_of(name);
            self.open = Some((at, VecDeque::new()));
            return;
        }
        if line == "failures:" || line.starts_with("test result: ") {
            self.close();
            return;
        }
        if let Some((_, lines)) = &mut self.open {
            if lines.len() == EXCERPT_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_owned());
        }
    }

    pub fn finish(mut self) -> Vec<Failure> {
        self.close();
        self.failures
    }

    fn index_of(&mut self, name: &str) -> usize {
        if let Some(at) = self.failures.iter().position(|f| f.name == name) {
            return at;
        }
        self.failures.push(Failure {
            name: name.to_owned(),
            excerpt: Vec::new(),
        });
        self.failures.len() - 1
    }

    fn close(&mut self) {
        if let Some((at, mut lines)) = self.open.take() {
            while lines.back().is_some_and(|l| l.trim().is_empty()) {
                lines.pop_back();
            }
            self.failures[at].excerpt = lines.into();
        }
    }
}

/// Every failure of this run, in the order the tests failed.
static FAILURES: Mutex<Vec<Failure>> = Mutex::new(Vec::new());

pub fn record(failures: Vec<Failure>) {
    FAILURES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(failures);
}

/// Takes the failures recorded since the last call.
pub fn take() -> Vec<Failure> {
    std::mem::take(&mut *FAILURES.lock().unwrap_or_else(|e| e.into_inner()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Vec<Failure> {
        let mut reader = FailureReader::default();
        text.lines().for_each(|l| reader.line(l));
        reader.finish()
    }

    #[test]
    fn names_and_panic_messages_of_failed_tests_are_collected() {
        let failures = read(
            "running 3 tests\n\
             test a ... ok\n\
             test b::c ... FAILED\n\
             test d ... FAILED\n\
             \n\
             failures:\n\
             \n\
             ---- b::c stdout ----\n\
             some output\n\
             thread 'b::c' panicked at src/lib.rs:3:5:\n\
             boom\n\
             \n\
             ---- d stdout ----\n\
             thread 'd' panicked at src/lib.rs:9:5:\n\
             bang\n\
             \n\
             \n\
             failures:\n\
                 b::c\n\
                 d\n\
             \n\
             test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        assert_eq!(
            failures,
            vec![
                Failure {
                    name: "b::c".into(),
                    excerpt: vec![
                        "some output".into(),
                        "thread 'b::c' panicked at src/lib.rs:3:5:".into(),
                        "boom".into()
                    ],
                },
                Failure {
                    name: "d".into(),
                    excerpt: vec![
                        "thread 'd' panicked at src/lib.rs:9:5:".into(),
                        "bang".into()
                    ],
                },
            ]
        );
    }

    #[test]
    fn only_the_last_lines_of_a_long_output_are_kept() {
        let mut text = String::from("test t ... FAILED\n---- t stdout ----\n");
        for i in 0..100 {
            text.push_str(&format!("line {i}\n"));
        }
        let failures = read(&text);
        assert_eq!(failures[0].excerpt.len(), EXCERPT_LINES);
        assert_eq!(failures[0].excerpt.last().unwrap(), "line 99");
    }

    #[test]
    fn a_run_without_failures_reports_none() {
        assert!(read("test a ... ok\ntest result: ok. 1 passed; 0 failed").is_empty());
    }
}
