//! Fast tier (no VM): every preset's ACPI tables are disassembled with
//! `iasl -d` (Debian/Ubuntu package `acpica-tools`) and the text checked
//! against the topology. Without iasl those tests are reported ignored (and
//! fail under CI=true).

use std::path::{Path, PathBuf};
use std::process::Command;

use ktstr_testenv::Need;
use ktstr_topology::{DistanceMatrix, NodeSpec, NumaTopology, Topology, TopologyError};
use ktstr_vmm::layout::{MIB, MMIO_GAP_END, MMIO_GAP_START};
use ktstr_vmm::topology::{AcpiTables, VirtioMmioDevice, build_acpi};

/// A virtio-mmio device as the VMM places its console.
const VIRTIO: VirtioMmioDevice = VirtioMmioDevice {
    base: 0xd000_0000,
    gsi: 5,
};

const PRESETS: [&str; 12] = [
    "1n1l1c1t", "1n1l2c1t", "1n2l2c1t", "1n1l1c2t", "2n2l1c1t", "1n1l4c1t", "1n2l4c1t", "1n2l2c2t",
    "2n4l2c1t", "2n2l4c2t", "4n8l2c1t", "1n4l8c2t",
];

const IASL: Need = Need::Program {
    name: "iasl",
    package: "acpica-tools",
};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ktstr-acpi-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Disassembles one table and returns the .dsl text.
fn disassemble(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let dat = dir.join(format!("{name}.dat"));
    std::fs::write(&dat, bytes).expect("write table");
    let out = Command::new("iasl")
        .arg("-d")
        .arg(&dat)
        .current_dir(dir)
        .output()
        .expect("run iasl");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "iasl -d {name} failed:\n{log}");
    let dsl = std::fs::read_to_string(dir.join(format!("{name}.dsl"))).expect("read .dsl");
    assert!(
        !log.contains("Incorrect checksum") && !dsl.contains("Incorrect checksum"),
        "{name}: bad checksum\n{log}"
    );
    dsl
}

/// Disassembly as subtables of `(field, value)`; record 0 is the header.
fn subtables(dsl: &str) -> Vec<Vec<(String, String)>> {
    let mut out = vec![Vec::new()];
    for line in dsl.lines() {
        let Some((_, rest)) = line.split_once(']') else {
            continue;
        };
        let Some((key, value)) = rest.split_once(" : ") else {
            continue;
        };
        let key = key.trim().to_string();
        let value = value.split("/*").next().unwrap_or("").trim().to_string();
        if key == "Subtable Type" {
            out.push(Vec::new());
        }
        if let Some(last) = out.last_mut() {
            last.push((key, value));
        }
    }
    out
}

fn field<'a>(sub: &'a [(String, String)], key: &str) -> &'a str {
    sub.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no field {key:?} in {sub:?}"))
}

fn hex(v: &str) -> u64 {
    let token = v.split_whitespace().next().unwrap_or("");
    u64::from_str_radix(token, 16).unwrap_or_else(|e| panic!("{v:?}: {e}"))
}

fn of_type(subs: &[Vec<(String, String)>], kind: u64) -> Vec<&[(String, String)]> {
    subs.iter()
        .filter(|s| {
            s.first()
                .is_some_and(|(k, v)| k == "Subtable Type" && hex(v) == kind)
        })
        .map(|s| s.as_slice())
        .collect()
}

fn blob<'a>(t: &'a AcpiTables, sig: &[u8; 4]) -> &'a [u8] {
    t.table(sig)
        .unwrap_or_else(|| panic!("no {}", String::from_utf8_lossy(sig)))
}

/// Checks every table of `topo` against its disassembly; `ranges` are the
/// expected memory affinity `(node, base, len)` entries.
fn check(tag: &str, topo: &NumaTopology, memory_mib: u64, ranges: &[(u64, u64, u64)]) {
    let tables = build_acpi(topo, memory_mib, &[VIRTIO]).expect(tag);
    let dir = TempDir::new(tag);
    let ids: Vec<u64> = (0..topo.vcpus())
        .map(|i| u64::from(topo.apic_id(i).expect("apic id")))
        .collect();

    let madt = subtables(&disassemble(&dir.0, "apic", blob(&tables, b"APIC")));
    let x2: Vec<(u64, u64)> = of_type(&madt, 9)
        .iter()
        .map(|s| {
            (
                hex(field(s, "Processor x2Apic ID")),
                hex(field(s, "Processor UID")),
            )
        })
        .collect();
    let expected: Vec<(u64, u64)> = ids.iter().copied().zip(0..).collect();
    assert_eq!(x2, expected, "{tag}: MADT x2APIC entries");
    let lapic: Vec<u64> = of_type(&madt, 0)
        .iter()
        .map(|s| hex(field(s, "Local Apic ID")))
        .collect();
    let small: Vec<u64> = ids.iter().copied().filter(|&i| i < 255).collect();
    assert_eq!(lapic, small, "{tag}: MADT Local APIC entries");
    let ioapic = of_type(&madt, 1);
    assert_eq!(ioapic.len(), 1, "{tag}: one IOAPIC");
    assert_eq!(hex(field(ioapic[0], "Address")), 0xfec0_0000);
    let iso = of_type(&madt, 2);
    assert_eq!(iso.len(), 1, "{tag}: one override");
    assert_eq!(
        (
            hex(field(iso[0], "Source")),
            hex(field(iso[0], "Interrupt"))
        ),
        (0, 2)
    );

    let srat = subtables(&disassemble(&dir.0, "srat", blob(&tables, b"SRAT")));
    let cpus: Vec<(u64, u64)> = of_type(&srat, 2)
        .iter()
        .map(|s| (hex(field(s, "Proximity Domain")), hex(field(s, "Apic ID"))))
        .collect();
    let expected: Vec<(u64, u64)> = topo
        .cpus()
        .zip(&ids)
        .map(|(c, &id)| (u64::from(c.node), id))
        .collect();
    assert_eq!(cpus, expected, "{tag}: SRAT x2APIC affinity");
    let mem: Vec<(u64, u64, u64)> = of_type(&srat, 1)
        .iter()
        .map(|s| {
            (
                hex(field(s, "Proximity Domain")),
                hex(field(s, "Base Address")),
                hex(field(s, "Address Length")),
            )
        })
        .collect();
    assert_eq!(mem, ranges, "{tag}: SRAT memory affinity");

    let slit = subtables(&disassemble(&dir.0, "slit", blob(&tables, b"SLIT")));
    let n = topo.distances.nodes();
    assert_eq!(hex(field(&slit[0], "Localities")), n as u64, "{tag}");
    for a in 0..n {
        let row: Vec<u64> = field(&slit[0], &format!("Locality {a:3}"))
            .split_whitespace()
            .map(hex)
            .collect();
        let expected: Vec<u64> = (0..n)
            .map(|b| u64::from(topo.distances.get(a, b)))
            .collect();
        assert_eq!(row, expected, "{tag}: SLIT row {a}");
    }

    let fadt = disassemble(&dir.0, "facp", blob(&tables, b"FACP"));
    assert!(
        fadt.contains("Hardware Reduced (V5) : 1"),
        "{tag}: FADT flags"
    );
    assert!(
        fadt.contains("8042 Present on ports 60/64 (V2) : 1"),
        "{tag}: FADT 8042"
    );
    let dsdt_addr = tables
        .blobs
        .iter()
        .find(|(_, b)| b.starts_with(b"DSDT"))
        .map(|(a, _)| *a)
        .expect("dsdt");
    let fadt_subs = subtables(&fadt);
    let dsdt_fields: Vec<u64> = fadt_subs[0]
        .iter()
        .filter(|(k, _)| k == "DSDT Address")
        .map(|(_, v)| hex(v))
        .collect();
    assert_eq!(
        dsdt_fields,
        vec![dsdt_addr, dsdt_addr],
        "{tag}: FADT -> DSDT"
    );
    let dsdt = disassemble(&dir.0, "dsdt", blob(&tables, b"DSDT"));
    assert!(dsdt.contains("Scope (\\_SB)"), "{tag}: DSDT\n{dsdt}");
    // Without a PIC (hardware-reduced ACPI) Linux maps only the interrupts
    // firmware describes: each device's GSI must be here, or its
    // request_irq fails (the virtio console's "Error -22 initializing vqs").
    let squashed: String = dsdt.split_whitespace().collect();
    for want in [
        "Name(_HID,\"LNRO0005\")",
        "Memory32Fixed(ReadWrite,0xD0000000,//AddressBase0x00001000,//AddressLength)",
        "Interrupt(ResourceConsumer,Edge,ActiveHigh,Exclusive,,,){0x00000005,}",
        "IO(Decode16,0x03F8,//RangeMinimum0x03F8,//RangeMaximum0x01,//Alignment0x08,//Length)IRQNoFlags(){4}",
        "IO(Decode16,0x02F8,//RangeMinimum0x02F8,//RangeMaximum0x01,//Alignment0x08,//Length)IRQNoFlags(){3}",
    ] {
        assert!(squashed.contains(want), "{tag}: DSDT lacks {want}:\n{dsdt}");
    }
    assert_eq!(
        squashed.matches("Name(_HID,\"PNP0501\"").count(),
        2,
        "{tag}: DSDT\n{dsdt}"
    );
    let xsdt = disassemble(&dir.0, "xsdt", blob(&tables, b"XSDT"));
    assert_eq!(xsdt.matches("ACPI Table Address").count(), 4, "{tag}: XSDT");

    let rsdp = blob(&tables, b"RSD ");
    assert_eq!(rsdp[..20].iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
    assert_eq!(rsdp.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
}

fn acpi_tables_of_every_preset_disassemble_to_the_topology() {
    const MEMORY_MIB: u64 = 512;
    for preset in PRESETS {
        let topo: Topology = preset.parse().expect(preset);
        let numa = topo.to_numa().expect(preset);
        let nodes = u64::from(topo.numa_nodes);
        let each = MEMORY_MIB / nodes * MIB;
        let ranges: Vec<(u64, u64, u64)> = (0..nodes).map(|n| (n, n * each, each)).collect();
        check(preset, &numa, MEMORY_MIB, &ranges);
    }
}

fn x2apic_ids_past_254_get_only_x2apic_entries() {
    let topo: Topology = "1n16l16c1t".parse().expect("topology");
    assert!(topo.needs_x2apic());
    let numa = topo.to_numa().expect("numa");
    check("x2apic", &numa, 256, &[(0, 0, 256 * MIB)]);
}

fn non_uniform_nodes_distances_and_memory_across_the_gap() {
    let topo = NumaTopology {
        cores_per_llc: 2,
        threads_per_core: 2,
        nodes: vec![
            NodeSpec {
                llcs: 1,
                memory_mib: Some(1024),
            },
            NodeSpec {
                llcs: 3,
                memory_mib: Some(3072),
            },
        ],
        distances: DistanceMatrix::from_rows(&[vec![10, 32], vec![32, 10]]).expect("matrix"),
    };
    let below = MMIO_GAP_START - 1024 * MIB;
    let ranges = [
        (0, 0, 1024 * MIB),
        (1, 1024 * MIB, below),
        (1, MMIO_GAP_END, 3072 * MIB - below),
    ];
    check("nonuniform", &topo, 4096, &ranges);
}

fn text_form_round_trips_and_errors_are_clear() {
    for preset in PRESETS {
        let topo: Topology = preset.parse().expect(preset);
        assert_eq!(topo.to_string(), preset);
    }
    let err = "1n2l4x2t".parse::<Topology>().expect_err("bad unit");
    assert!(
        matches!(
            err,
            TopologyError::Parse {
                part: "cores per LLC",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cores per LLC"), "{err}");
    assert!(matches!(
        "2n3l1c1t".parse::<Topology>(),
        Err(TopologyError::LlcsNotDivisible { .. })
    ));
    assert!(matches!(
        "1n1l0c1t".parse::<Topology>(),
        Err(TopologyError::Zero {
            what: "cores_per_llc"
        })
    ));
    assert!(matches!(
        Topology::new(1, 4, 8, 2).validate(32),
        Err(TopologyError::TooManyVcpus { vcpus: 64, max: 32 })
    ));
}

fn main() -> std::process::ExitCode {
    let tests = [
        ktstr_testenv::tests![&[IASL]; acpi_tables_of_every_preset_disassemble_to_the_topology, x2apic_ids_past_254_get_only_x2apic_entries, non_uniform_nodes_distances_and_memory_across_the_gap],
        ktstr_testenv::tests![&[]; text_form_round_trips_and_errors_are_clear],
    ];
    ktstr_testenv::run(tests.into_iter().flatten().collect())
}
