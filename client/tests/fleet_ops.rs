//! The OEM's fleet operations (issue 28): the director's checks at assignment.

mod world;

use ota_metadata::DateTime;
use ota_repo::oem;
use world::World;

fn assign(w: &World, target: oem::AssignTarget, version: &str) -> ota_repo::error::Result<()> {
    oem::assign(
        &w.p("oem"),
        oem::Assign {
            target,
            supplier: "acme".into(),
            uid: "brake-fw".into(),
            version: version.into(),
        },
    )
    .map(|_| ())
}

/// Scenario: Uptane release counter | the OEM assigns an ECU a release below the counter the vehicle last reported it running (by mistake, or a compromised director's script) | refused at `oem assign`, for one ECU and for a whole hardware id (nothing written): the ECU would refuse it, and the vehicle's other updates would wait on it
#[test]
fn an_assignment_below_the_reported_counter_is_refused() {
    let w = World::new();
    let dir = w.p("oem");
    // VIN1's S1 reported running brake-fw 2.0 (release counter 2).
    let s1 = ota_fleet::report::EcuState {
        serial: "S1".into(),
        hardware_id: "BRAKE-A".into(),
        image: Some(ota_fleet::report::Running {
            uid: "brake-fw".into(),
            version: "2.0".into(),
            sha256: "00".repeat(32),
            release_counter: 2,
        }),
    };
    oem::reports::open(&dir)
        .unwrap()
        .transaction(|tx| ota_fleet::store::record_ecu(tx, "VIN1", &s1, DateTime::now().0))
        .unwrap();
    let one = |serial: &str| oem::AssignTarget::Vehicle {
        vin: "VIN1".into(),
        serial: Some(serial.into()),
    };
    let err = assign(&w, one("S1"), "1.0").unwrap_err().to_string();
    assert!(
        err.contains("release counter 2") && err.contains("S1"),
        "{err}"
    );
    // The whole hardware id: refused whole, nothing assigned to S2 either.
    let before = oem::Assignments::load(&dir).unwrap().vehicles;
    let err = assign(&w, oem::AssignTarget::HardwareId("BRAKE-A".into()), "1.0")
        .unwrap_err()
        .to_string();
    assert!(err.contains("S1"), "{err}");
    assert_eq!(oem::Assignments::load(&dir).unwrap().vehicles, before);
    // The same counter, or another ECU that reported nothing, is fine.
    assign(&w, one("S1"), "2.0").unwrap();
    assign(&w, one("S2"), "1.0").unwrap();
}
