//! Publishing through object storage (issue 14): the three trees uploaded with `ota-repo
//! upload` to a real S3-compatible server on loopback (moto's), every pin naming the store's
//! HTTP endpoint, and a gateway updating from the store alone.

mod world;

use ota_client::gateway::{summary, EcuOutcome};
use ota_repo::upload::{upload, UploadOpts};
use ota_testkit::s3::S3Server;
use world::World;

/// Scenario: CDN publishing | the trees are served from object storage uploaded by `ota-repo upload` | a gateway walks master, regulator and supplier trees through the store and installs the image
#[test]
fn a_gateway_updates_from_trees_uploaded_to_an_s3_store() {
    let Some(s3) = S3Server::start() else {
        return;
    };
    s3.public_bucket("ota");
    let config: Vec<(String, String)> = s3
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let sync: world::Sync = Box::new(move |name, dir| {
        let r = upload(
            dir,
            &UploadOpts {
                to: format!("s3://ota/{name}"),
                prune: false,
                jobs: 4,
                short_max_age: 60,
                dry_run: false,
                s3_config: config.clone(),
            },
        )
        .unwrap();
        assert!(r.sent > 0, "{name}: nothing sent");
    });
    let endpoint = s3.endpoint();
    let w = World::build_synced(
        tempfile::tempdir().unwrap(),
        Some(Box::new(move |n| format!("{endpoint}/ota/{n}/"))),
        None,
        Some(sync),
    );
    w.assign("S1", "1.0");
    let out = w.update();
    let s1 = &out.iter().find(|(s, _)| s == "S1").unwrap().1;
    assert!(matches!(s1, EcuOutcome::Updated { .. }), "{}", summary(s1));
    assert_eq!(
        std::fs::read(w.p("ecus/S1/image.bin")).unwrap(),
        vec![1u8; 5000]
    );
}
