//! Publishing through object storage (issue 14): the three trees uploaded with `ota-repo
//! upload` to a real S3-compatible server on loopback (moto's), every pin naming the store's
//! HTTP endpoint, and a gateway updating from the store alone.

mod world;

use ota_client::gateway::{summary, EcuOutcome};
use ota_testkit::s3::S3Server;

/// Scenario: CDN publishing | the trees are served from object storage uploaded by `ota-repo upload` | a gateway walks master, regulator and supplier trees through the store and installs the image
#[test]
fn a_gateway_updates_from_trees_uploaded_to_an_s3_store() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    let w = world::s3_world(&s3);
    w.assign("S1", "1.0");
    let out = w.update();
    let s1 = &out.iter().find(|(s, _)| s == "S1").unwrap().1;
    assert!(matches!(s1, EcuOutcome::Updated { .. }), "{}", summary(s1));
    assert_eq!(
        std::fs::read(w.p("ecus/S1/image.bin")).unwrap(),
        vec![1u8; 5000]
    );
}
