//! Update sets: which ECUs of an update go together. The ECUs whose assignments name the same
//! set (`EcuAssignment::set`; none: the vehicle's default set) are installed all or nothing;
//! different sets are independent, so a refused set does not hold back another. A requirement
//! met by an image of this update (`EcuAssignment::requires`) joins the two sets: an image
//! must never be activated without the one it needs.
//!
//! Requirements and conflicts are checked on the vehicle as it will be after a set is
//! installed: what each ECU runs, overlaid by the set's images.

use crate::walk::Installed;
use ota_metadata::documents::{EcuAssignment, VehicleImages};
use std::collections::BTreeMap;

/// The group (an index) of each serial of the update.
pub(super) fn groups(update: &BTreeMap<String, &EcuAssignment>) -> BTreeMap<String, usize> {
    // Union-find over set names.
    let names: Vec<String> = {
        let mut v: Vec<String> = update.values().map(|a| set_name(a)).collect();
        v.sort();
        v.dedup();
        v
    };
    let index = |n: &str| names.binary_search_by(|x| x.as_str().cmp(n)).unwrap_or(0);
    let mut parent: Vec<usize> = (0..names.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    for a in update.values() {
        for r in &a.requires {
            for b in update.values() {
                if b.uid == r.uid && b.release_counter >= r.min_release_counter {
                    let (x, y) = (
                        root(&mut parent, index(&set_name(a))),
                        root(&mut parent, index(&set_name(b))),
                    );
                    parent[x.max(y)] = x.min(y);
                }
            }
        }
    }
    update
        .iter()
        .map(|(serial, a)| (serial.clone(), root(&mut parent, index(&set_name(a)))))
        .collect()
}

fn set_name(a: &EcuAssignment) -> String {
    a.set.clone().unwrap_or_default()
}

/// The vehicle after `members` (serial, assignment) are installed over `installed`.
pub(super) fn after<'a>(
    installed: &BTreeMap<String, Installed>,
    members: impl Iterator<Item = (&'a String, &'a EcuAssignment)>,
) -> VehicleImages {
    let mut out: VehicleImages = installed
        .iter()
        .map(|(s, i)| {
            (
                s.clone(),
                (i.uid.clone(), i.version.clone(), i.release_counter),
            )
        })
        .collect();
    for (s, a) in members {
        out.insert(
            s.clone(),
            (a.uid.clone(), a.version.clone(), a.release_counter),
        );
    }
    out
}
