//! Running a command on a pseudo-terminal, for the tests of what a CLI shows only on a
//! terminal (progress lines). It uses util-linux `script`, which every Debian has (package
//! bsdutils, essential), so no terminal crate is needed.

use std::process::Output;
use std::time::Duration;

/// Runs `program` with `args` on a pseudo-terminal (`TERM=xterm`, no `RUST_LOG`) and
/// returns what the terminal showed (stdout; stderr goes to the same terminal) and the
/// exit status. Each argument is quoted for the shell `script` hands the line to.
///
/// # Panics
/// If `script` cannot run, or the command is not done within `limit`.
pub async fn on_terminal(program: &str, args: &[&str], limit: Duration) -> Output {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let line = std::iter::once(program)
        .chain(args.iter().copied())
        .map(quote)
        .collect::<Vec<_>>()
        .join(" ");
    tokio::time::timeout(
        limit,
        tokio::process::Command::new("script")
            .args(["-q", "-e", "-f", "-c", &line, "/dev/null"])
            .env_remove("RUST_LOG")
            .env("TERM", "xterm")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{line} did not end within {limit:?}"))
    .expect("util-linux `script` runs (package bsdutils)")
}

/// The lines a terminal showed that contain every one of `needles`: a line redrawn in
/// place (`\r`) counts once per drawing.
#[must_use]
pub fn drawn_lines<'a>(shown: &'a str, needles: &[&str]) -> Vec<&'a str> {
    shown
        .split(['\r', '\n'])
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_sees_a_terminal_and_its_output_comes_back() {
        let o = on_terminal(
            "sh",
            &["-c", "test -t 1 && printf 'a\\rab\\n' || echo piped"],
            Duration::from_secs(10),
        )
        .await;
        let shown = String::from_utf8_lossy(&o.stdout);
        assert_eq!(drawn_lines(&shown, &["a"]), vec!["a", "ab"], "{shown:?}");
    }
}
