//! Follows the guest's serial console line by line: which stage the guest is in, the script's output
//! and exit status, and kernel panics.

use std::collections::VecDeque;

use crate::initramfs::{
    MARK_EXIT, MARK_HOST_STAMP, MARK_PROGRESS, MARK_SCRIPT, MARK_STAGE, MARK_START,
};

/// How far the guest got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The kernel is booting; `/init` has not printed yet.
    Kernel,
    /// `/init` runs (loading modules) and has not started the script.
    Init,
    /// The script runs.
    Script,
    /// The script exited with this status; the guest is powering off.
    Exited(i32),
}

impl Stage {
    /// Where the guest was, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Kernel => "the kernel was booting (before /init)",
            Stage::Init => "/init was loading modules (before the script)",
            Stage::Script => "running the script",
            Stage::Exited(_) => "powering off after the script exited",
        }
    }
}

/// How many console lines error messages quote.
pub const TAIL_LINES: usize = 25;

/// The state built from console lines.
#[derive(Debug)]
pub struct Watch {
    pub stage: Stage,
    pub panicked: bool,
    /// The stage the script last named (`stage NAME` in the guest).
    pub step: Option<String>,
    /// The label of a `host-stamp` line just fed, for the harness to take.
    pub host_stamp: Option<String>,
    script_output: Vec<String>,
    tail: VecDeque<String>,
}

impl Default for Watch {
    fn default() -> Self {
        Watch {
            stage: Stage::Kernel,
            panicked: false,
            step: None,
            host_stamp: None,
            script_output: Vec::new(),
            tail: VecDeque::with_capacity(TAIL_LINES),
        }
    }
}

impl Watch {
    /// Takes one console line (without its newline); returns whether it shows the guest progressing.
    ///
    /// Progress is any line from `/init` or the script, `stage` and `progress` lines included; kernel
    /// messages are not (a guest stuck in a hung mount still prints the kernel's hung-task warnings).
    pub fn feed(&mut self, raw: &str) -> bool {
        let clean = strip_escapes(raw);
        let line = clean.trim_end_matches('\r');
        if self.tail.len() == TAIL_LINES {
            self.tail.pop_front();
        }
        self.tail.push_back(line.to_owned());
        if line.contains("Kernel panic - not syncing") {
            self.panicked = true;
        }
        let from_userspace = !is_kernel_message(line);
        match self.stage {
            // The firmware leaves terminal escapes without a newline, so the first marker may follow them.
            Stage::Kernel if line.trim_end().ends_with(MARK_START) => self.stage = Stage::Init,
            Stage::Kernel => {}
            Stage::Init if line.trim_end().ends_with(MARK_SCRIPT) => self.stage = Stage::Script,
            Stage::Init => {}
            Stage::Script => {
                if let Some(status) = exit_status(line) {
                    if self.script_output.last().is_some_and(String::is_empty) {
                        // /init prints a newline before the marker in case the script's last line had none.
                        self.script_output.pop();
                    }
                    self.stage = Stage::Exited(status);
                } else if let Some(name) = line.trim().strip_prefix(MARK_STAGE) {
                    self.step = Some(name.trim().to_owned());
                } else if let Some(label) = line.trim().strip_prefix(MARK_HOST_STAMP) {
                    self.host_stamp = Some(label.trim().to_owned());
                } else if line.trim() != MARK_PROGRESS {
                    self.script_output.push(line.to_owned());
                }
            }
            Stage::Exited(_) => return false,
        }
        from_userspace && self.stage != Stage::Kernel
    }

    /// The script's last line of output that was not empty, if any.
    pub fn last_output(&self) -> Option<&str> {
        self.script_output
            .iter()
            .rev()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
    }

    /// What the script printed (stdout and stderr), one line each.
    pub fn script_output(&self) -> String {
        let mut text = self.script_output.join("\n");
        if !text.is_empty() {
            text.push('\n');
        }
        text
    }

    /// The last console lines.
    pub fn tail(&self) -> String {
        Vec::from(self.tail.clone()).join("\n")
    }
}

/// `line` without terminal escape sequences (the firmware clears the screen and resets the terminal).
pub fn strip_escapes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        // CSI runs to a final byte in '@'..='~'; other sequences (ESC c: reset) are two characters.
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        }
    }
    out
}

/// A kernel `printk` line: `[   12.345678] ...` (Debian kernels print the time).
fn is_kernel_message(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let stamp = stamp.trim();
    !stamp.is_empty()
        && stamp.contains('.')
        && stamp.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// The status of an exact `GUEST-EXIT:<n>` line.
fn exit_status(line: &str) -> Option<i32> {
    line.trim().strip_prefix(MARK_EXIT)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(lines: &[&str]) -> Watch {
        let mut w = Watch::default();
        for l in lines {
            w.feed(l);
        }
        w
    }

    #[test]
    fn stages_follow_markers_and_collect_script_output() {
        let w = feed(&[
            "[    0.000] Linux version 6.12",
            "\u{1b}c\u{1b}[?7l\u{1b}[2JINIT:start\r",
            "INIT:script",
            "hello\r",
            "world",
            "",
            "GUEST-EXIT:3",
            "reboot: Power down",
        ]);
        assert_eq!(w.stage, Stage::Exited(3));
        assert_eq!(w.script_output(), "hello\nworld\n");
        assert!(!w.panicked);
        assert!(w.tail().ends_with("GUEST-EXIT:3\nreboot: Power down"));
    }

    #[test]
    fn a_host_stamp_is_handed_over_and_kept_out_of_the_output() {
        let mut w = feed(&["INIT:start", "INIT:script", "before"]);
        assert!(w.feed("GUEST-HOST-STAMP:begin 1 ublk\r"));
        assert_eq!(w.host_stamp.take().as_deref(), Some("begin 1 ublk"));
        w.feed("after");
        assert_eq!(w.host_stamp, None);
        assert_eq!(w.script_output(), "before\nafter\n");
    }

    #[test]
    fn markers_out_of_order_or_quoted_do_not_advance() {
        let w = feed(&["INIT:script", "GUEST-EXIT:0"]);
        assert_eq!(w.stage, Stage::Kernel);
        let w = feed(&["INIT:start", "INIT:script", "echo \"GUEST-EXIT:$status\""]);
        assert_eq!(w.stage, Stage::Script);
    }

    #[test]
    fn script_output_and_stage_lines_are_progress_kernel_messages_are_not() {
        let mut w = Watch::default();
        assert!(
            !w.feed("[    0.5] Linux version 6.12"),
            "booting is not progress"
        );
        assert!(w.feed("INIT:start"));
        assert!(w.feed("INIT:script"));
        assert!(w.feed("GUEST-STAGE:copy files"));
        assert_eq!(w.step.as_deref(), Some("copy files"));
        assert!(w.feed("GUEST-PROGRESS"));
        assert!(w.feed("copied 3"));
        assert!(w.feed(""));
        assert!(
            !w.feed("[  242.123456] INFO: task mount:77 blocked for more than 120 seconds."),
            "a hung-task warning is not progress"
        );
        assert!(w.feed("[not a stamp] but output"));
        assert_eq!(w.last_output(), Some("[not a stamp] but output"));
        assert_eq!(
            w.script_output(),
            "copied 3\n\n[  242.123456] INFO: task mount:77 blocked for more than 120 seconds.\n\
             [not a stamp] but output\n",
            "stage and progress lines are not output"
        );
        w.feed("GUEST-EXIT:0");
        assert_eq!(w.stage, Stage::Exited(0));
        assert!(
            !w.feed("reboot: Power down"),
            "after the exit status nothing is progress"
        );
    }

    #[test]
    fn escapes_are_stripped() {
        assert_eq!(
            strip_escapes("\u{1b}c\u{1b}[?7l\u{1b}[2JINIT:start"),
            "INIT:start"
        );
        assert_eq!(strip_escapes("a\u{1b}[0;32mgreen\u{1b}[0m b"), "agreen b");
        assert_eq!(strip_escapes("tail\u{1b}"), "tail");
        let w = feed(&["INIT:start", "INIT:script", "\u{1b}[1mbold\u{1b}[0m"]);
        assert_eq!(w.script_output(), "bold\n");
        assert!(!w.tail().contains('\u{1b}'));
    }

    #[test]
    fn panic_is_noticed_and_tail_is_bounded() {
        let mut w = Watch::default();
        for i in 0..100 {
            w.feed(&format!("line {i}"));
        }
        w.feed("Kernel panic - not syncing: Fatal exception in interrupt");
        assert!(w.panicked);
        assert_eq!(w.tail().lines().count(), TAIL_LINES);
        assert!(w.tail().starts_with("line 76"));
    }
}
