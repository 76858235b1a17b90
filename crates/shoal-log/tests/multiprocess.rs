//! Real second processes (this test binary re-run as a child): a partition
//! locked by its writer refuses another process's appends with the holder's
//! pid, while that process can still read it and describe the group.

use std::process::Command;

use shoal_log::*;

const CHILD_ENV: &str = "SHOAL_LOG_TEST_CHILD_DIR";

/// Runs only inside a child process; prints what it observed.
#[test]
fn child_entry() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = LogDir::open(&dir, LogConfig::default()).unwrap();
    let mut buf = FetchBuffer::new();
    let (mut n, mut off) = (0, 0);
    loop {
        log.fetch("t", 0, off, 1000, 1 << 20, &mut buf).unwrap();
        let Some(next) = buf.next_offset() else { break };
        n += buf.len();
        off = next;
    }
    println!("CHILD READ {n}");
    match log.describe_group("g") {
        Ok(d) => println!(
            "CHILD GROUP active={} members={}",
            d.active,
            d.members.len()
        ),
        Err(e) => println!("CHILD GROUP error {e}"),
    }
    match log.append_to("t", 0, &[(None, b"{\"from\":\"child\"}", 0)]) {
        Ok(o) => println!("CHILD APPENDED {o}"),
        Err(Error::PartitionLocked { holder, .. }) => {
            println!("CHILD LOCKED {}", holder.unwrap_or(0))
        }
        Err(e) => println!("CHILD ERROR {e}"),
    }
}

fn run_child(dir: &std::path::Path) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn another_process_reads_but_cannot_write_a_locked_partition() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = LogDir::open(dir.path(), LogConfig::default()).unwrap();
        log.create_topic("t", 1).unwrap();
        let recs: Vec<RecordRef<'_>> = (0..100).map(|_| (None, b"{}".as_slice(), 0)).collect();
        log.append_to("t", 0, &recs).unwrap();
        let _member = log
            .consumer("g", ConsumerConfig::new(["t"], AssignorKind::Range))
            .unwrap();
        let out = run_child(dir.path());
        assert!(out.contains("CHILD READ 100"), "{out}");
        assert!(out.contains("CHILD GROUP active=true members=1"), "{out}");
        assert!(
            out.contains(&format!("CHILD LOCKED {}", std::process::id())),
            "{out}"
        );
    }
    // The writer is gone: the other process may write now.
    let out = run_child(dir.path());
    assert!(out.contains("CHILD GROUP active=false members=0"), "{out}");
    assert!(out.contains("CHILD APPENDED 100"), "{out}");
}
