//! A Merkle tree over the chain heads: one signature covers every chain,
//! and one chain's head is proven to be covered by a short path.
//!
//! Leaves are SHA-256("leaf\n" ‖ subject ‖ "\n" ‖ seq ‖ "\n" ‖ hash), in the
//! order of their subjects; a node is SHA-256("node\n" ‖ left ‖ right) of
//! its children's hex; an odd node at the end of a level is carried up as
//! it is. The domain prefixes keep a leaf from passing for a node.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One chain's head, as anchored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub struct Leaf {
    /// The chain's subject (a contact id, or `template/<id>`).
    pub subject: String,
    /// The head's sequence number.
    pub seq: u64,
    /// The head's hash.
    pub hash: String,
}

impl Leaf {
    /// The leaf's hash.
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(
            format!("leaf\n{}\n{}\n{}", self.subject, self.seq, self.hash).as_bytes(),
        ))
    }
}

fn node(left: &str, right: &str) -> String {
    hex::encode(Sha256::digest(format!("node\n{left}{right}").as_bytes()))
}

/// One step of an inclusion proof: the sibling's hash and its side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofStep {
    /// The sibling's hash.
    pub sibling: String,
    /// Whether the sibling is on the left.
    pub left: bool,
}

/// The root over `leaves` (sorted by subject first); the empty tree's root
/// is the hash of nothing.
pub fn root(leaves: &[Leaf]) -> String {
    let mut level: Vec<String> = leaves.iter().map(Leaf::digest).collect();
    if level.is_empty() {
        return hex::encode(Sha256::digest(b""));
    }
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node(left, right),
                [single] => single.clone(),
                _ => String::new(),
            })
            .collect();
    }
    level.pop().unwrap_or_default()
}

/// The path from leaf `index` to the root of `leaves`.
pub fn inclusion_proof(leaves: &[Leaf], index: usize) -> Vec<ProofStep> {
    let mut level: Vec<String> = leaves.iter().map(Leaf::digest).collect();
    let mut index = index;
    let mut path = Vec::new();
    while level.len() > 1 {
        let sibling = index ^ 1;
        if let Some(hash) = level.get(sibling) {
            path.push(ProofStep {
                sibling: hash.clone(),
                left: sibling < index,
            });
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => node(left, right),
                [single] => single.clone(),
                _ => String::new(),
            })
            .collect();
        index /= 2;
    }
    path
}

/// Whether `leaf` with `path` leads to `root`.
pub fn verify_inclusion(leaf: &Leaf, path: &[ProofStep], root: &str) -> bool {
    let mut hash = leaf.digest();
    for step in path {
        hash = if step.left {
            node(&step.sibling, &hash)
        } else {
            node(&hash, &step.sibling)
        };
    }
    hash == root
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
    use super::*;

    fn leaves(n: u64) -> Vec<Leaf> {
        (0..n)
            .map(|i| Leaf {
                subject: format!("c{i:03}"),
                seq: i + 1,
                hash: format!("{i:064x}"),
            })
            .collect()
    }

    #[test]
    fn every_leaf_of_every_tree_size_proves_its_inclusion_and_nothing_else_does() {
        for n in 1..=17 {
            let all = leaves(n);
            let top = root(&all);
            for (i, leaf) in all.iter().enumerate() {
                let path = inclusion_proof(&all, i);
                assert!(verify_inclusion(leaf, &path, &top), "{n} {i}");
                let mut forged = leaf.clone();
                forged.seq += 1;
                assert!(!verify_inclusion(&forged, &path, &top), "{n} {i}");
            }
        }
    }
}
