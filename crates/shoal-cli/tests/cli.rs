//! The binary's own smoke tests (they also make `cargo test --workspace`
//! build `target/<profile>/shoal` for the end-to-end tests in `tests/`).

use std::process::Command;

fn shoal(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_shoal"))
        .args(args)
        .output()
        .expect("run shoal")
}

#[test]
fn help_lists_commands_and_examples() {
    let out = shoal(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for cmd in ["run", "validate", "explain", "Examples"] {
        assert!(text.contains(cmd), "--help lacks {cmd}:\n{text}");
    }
    for sub in ["run", "validate", "explain"] {
        let out = shoal(&[sub, "--help"]);
        assert!(out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Examples"),
            "{sub} --help has no examples"
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(shoal(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(shoal(&["validate"]).status.code(), Some(2));
}
