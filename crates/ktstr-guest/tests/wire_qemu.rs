//! ktstr-guest in a real kernel under QEMU TCG: the wire format end to end
//! over the `ktstr.bulk` virtio port and over COM2, with throughput figures.

mod common;

use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Duration, Instant};

use common::{NEEDS, StreamCheck, initramfs, test_env, vm_slot};
use ktstr_qemu::{Accel, ExitKind, QemuBuilder};
use ktstr_wire::{Command, Ping, encode};

/// Generous: TCG on a shared 2-core host.
const DEADLINE: Duration = Duration::from_secs(300);
const PINGS: u64 = 100;

fn builder(env: &common::TestEnv, initrd: &std::path::Path) -> QemuBuilder {
    QemuBuilder::new(&env.kernel)
        .initramfs(initrd)
        .accel(Accel::Tcg)
        .vcpus(2)
        .memory_mib(512)
        .cmdline("quiet")
        .deadline(DEADLINE)
}

/// Feed `rx` into `check` until `done` holds; false on timeout or EOF.
fn pump(
    rx: &Receiver<Vec<u8>>,
    check: &mut StreamCheck,
    until: Instant,
    done: impl Fn(&StreamCheck) -> bool,
) -> bool {
    while !done(check) {
        let left = until.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => check.push(&chunk),
            Err(_) => return false,
        }
    }
    true
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted
        .get((sorted.len().saturating_sub(1)) * p / 100)
        .copied()
        .unwrap_or_default()
}

fn virtio_bulk_stream_pings_and_shutdown() {
    let _slot = vm_slot();
    let env = test_env();
    let mib = 16;
    let initrd = initramfs(&format!("wire-selftest --mib {mib} --garbage-every 16"));
    let mut vm = builder(&env, initrd.path()).spawn().expect("spawn");
    let tx = vm.bulk_sender().expect("bulk sender");
    let rx = vm.take_bulk_receiver().expect("bulk receiver");
    let until = Instant::now() + DEADLINE;
    let mut check = StreamCheck::new();

    let got_report = pump(&rx, &mut check, until, |c| c.report.is_some());
    let com1 = || String::from_utf8_lossy(&vm.com1()).into_owned();
    assert!(
        got_report,
        "no report; errors {:?}\nCOM1:\n{}",
        check.errors,
        com1()
    );
    let report = check.report.expect("report");
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    assert_eq!(check.dec.stats().errors, 0);
    assert_eq!(check.data_frames, report.frames);
    assert_eq!(check.data_bytes, report.payload_bytes);
    assert!(check.data_bytes >= mib << 20, "{} bytes", check.data_bytes);
    assert!(report.garbage_bytes > 0);
    assert_eq!(check.dec.stats().garbage_bytes, report.garbage_bytes);
    let (mibs, fps, span) = check.rates();

    let mut seq = 0;
    let mut rtts = Vec::new();
    for token in 0..PINGS {
        let token = 0xC0FF_EE00_0000 + token;
        let sent = Instant::now();
        tx.send(&encode(seq, &Command::Ping(Ping::new(token)).into()).expect("encode"))
            .expect("send ping");
        seq += 1;
        let deadline = sent + Duration::from_secs(30);
        let answered = pump(&rx, &mut check, deadline, |c| {
            c.pongs.iter().any(|&(t, _)| t == token)
        });
        assert!(answered, "no pong for {token:#x}\nCOM1:\n{}", com1());
        let at = check
            .pongs
            .iter()
            .find(|&&(t, _)| t == token)
            .expect("pong")
            .1;
        rtts.push(at - sent);
    }
    assert_eq!(check.pongs.len() as u64, PINGS);
    assert!(check.errors.is_empty(), "{:?}", check.errors);

    // Host→guest: large then small Stdin frames, each phase closed by a Ping;
    // the guest pattern-checks every frame and reports its tally before the Pong.
    let mut host_to_guest = Vec::new();
    let (mut frames_sent, mut bytes_sent) = (0u64, 0u64);
    for (phase, (frame_len, frames)) in [(60 * 1024usize, 280u64), (64, 8192)]
        .into_iter()
        .enumerate()
    {
        let started = Instant::now();
        let mut batch = Vec::new();
        for i in 0..frames {
            let mut data = vec![0u8; frame_len];
            ktstr_guest::pattern::fill(seq, &mut data);
            let chunk = ktstr_wire::Chunk {
                pid: 0,
                data: ktstr_wire::ByteStr(&data),
            };
            batch.extend(encode(seq, &Command::Stdin(chunk).into()).expect("encode"));
            seq += 1;
            if batch.len() >= 256 * 1024 || i + 1 == frames {
                tx.send(&batch).expect("send stdin");
                batch.clear();
            }
        }
        frames_sent += frames;
        bytes_sent += frames * frame_len as u64;
        let token = 0x57D1_0000 + phase as u64;
        tx.send(&encode(seq, &Command::Ping(Ping::new(token)).into()).expect("encode"))
            .expect("send ping");
        seq += 1;
        let answered = pump(
            &rx,
            &mut check,
            Instant::now() + Duration::from_secs(120),
            |c| c.pongs.iter().any(|&(t, _)| t == token),
        );
        assert!(
            answered,
            "no pong after host→guest phase {phase}\nCOM1:\n{}",
            com1()
        );
        let elapsed = started.elapsed();
        let expected = format!("stdin frames={frames_sent} bytes={bytes_sent} bad=0");
        assert_eq!(
            check.stdin_logs.last(),
            Some(&expected),
            "guest tally after phase {phase}"
        );
        host_to_guest.push((frame_len, frames, elapsed));
    }
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    tx.send(&encode(seq, &Command::Shutdown.into()).expect("encode"))
        .expect("send shutdown");
    let out = vm.wait().expect("wait");
    let com1 = out.com1_text();
    assert_eq!(out.exit, ExitKind::Reboot, "{com1}");
    assert!(com1.contains("KTSTR-GUEST-EXIT rc=0"), "{com1}");

    rtts.sort();
    eprintln!(
        "virtio bulk guest→host: {} MiB in {} frames over {span:.2?}: {mibs:.1} MiB/s, {fps:.0} frames/s; \
         garbage {} B skipped; ping RTT p50 {:?} p99 {:?} (n={PINGS})",
        check.data_bytes >> 20,
        check.data_frames,
        report.garbage_bytes,
        percentile(&rtts, 50),
        percentile(&rtts, 99),
    );
    for (frame_len, frames, elapsed) in host_to_guest {
        let secs = elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "virtio bulk host→guest: {frames} frames of {frame_len} B in {elapsed:.2?}: {:.1} MiB/s, {:.0} frames/s (checked by the guest)",
            (frames * frame_len as u64) as f64 / secs / (1 << 20) as f64,
            frames as f64 / secs
        );
    }
}

/// COM2 sink that timestamps nothing itself: chunks go to the test thread.
struct ChannelSink(Sender<Vec<u8>>);

impl Write for ChannelSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn uart_com2_stream() {
    let _slot = vm_slot();
    let env = test_env();
    let kib = 256;
    let initrd = initramfs(&format!(
        "uart-selftest --kib {kib} --dev /dev/ttyS1 --garbage-every 8"
    ));
    let (tx, rx) = channel();
    let vm = builder(&env, initrd.path())
        .com2_sink(Box::new(ChannelSink(tx)))
        .spawn()
        .expect("spawn");
    let mut check = StreamCheck::new();
    let got_report = pump(&rx, &mut check, Instant::now() + DEADLINE, |c| {
        c.report.is_some()
    });
    let out = vm.wait().expect("wait");
    let com1 = out.com1_text();
    assert!(
        got_report,
        "no report; errors {:?}\nCOM1:\n{com1}",
        check.errors
    );
    assert_eq!(out.exit, ExitKind::Reboot, "{com1}");
    assert!(com1.contains("KTSTR-GUEST-EXIT rc=0"), "{com1}");
    let report = check.report.expect("report");
    assert!(check.errors.is_empty(), "{:?}", check.errors);
    assert_eq!(check.dec.stats().errors, 0);
    assert_eq!(check.data_bytes, report.payload_bytes);
    assert!(check.data_bytes >= kib << 10);
    assert_eq!(check.dec.stats().garbage_bytes, report.garbage_bytes);
    // The captured COM2 bytes decode the same way offline.
    let mut offline = StreamCheck::new();
    offline.push(&out.com2);
    assert_eq!(offline.report, Some(report));
    let (mibs, fps, span) = check.rates();
    eprintln!(
        "UART COM2 guest→host: {} KiB in {} frames over {span:.2?}: {mibs:.3} MiB/s, {fps:.1} frames/s",
        check.data_bytes >> 10,
        check.data_frames,
    );
}

fn main() -> std::process::ExitCode {
    let tests =
        [ktstr_testenv::tests![NEEDS; virtio_bulk_stream_pings_and_shutdown, uart_com2_stream]];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
