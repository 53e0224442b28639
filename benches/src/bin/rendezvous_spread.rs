//! Measures how evenly rendezvous groups share their buckets, and what a table costs to build.
//!
//! For each bucket count (256, 1024, 4096) and member count (2 to 64, weight 1, keys drawn at
//! random like the hashes of next-hop addresses), builds `SEEDS` tables with random seeds and
//! reports the largest and smallest member's bucket count relative to the ideal share B / n:
//! the mean over seeds and the worst seed. Then times the build of a 4096-bucket, 64-member
//! table (median of `REPEATS`). Prints a Markdown table (benches/RESULTS.md holds a run).

use std::time::Instant;

use ecmp_tables::group::{GroupMode, ResilientGroup};

const SEEDS: usize = 200;
const REPEATS: usize = 21;

/// splitmix64, for reproducible draws.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn build(buckets: u32, members: u32, seed: u64, keys: &mut u64) -> ResilientGroup {
    let mut g = ResilientGroup::new(buckets, GroupMode::Rendezvous, seed).expect("valid group");
    for hop in 1..=members {
        g.add_member(hop, 1).expect("valid member");
        g.set_maglev_key(hop, next(keys)).expect("listed member");
    }
    g
}

fn main() {
    let mut draws = 0x5eed_u64;
    println!(
        "| buckets | members | max/ideal mean | max/ideal worst | min/ideal mean | min/ideal worst |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for buckets in [256u32, 1024, 4096] {
        for members in [2u32, 4, 8, 16, 32, 64] {
            let ideal = f64::from(buckets) / f64::from(members);
            let (mut max_sum, mut min_sum, mut max_worst, mut min_worst) =
                (0.0, 0.0, 0.0f64, f64::MAX);
            for _ in 0..SEEDS {
                let seed = next(&mut draws);
                let g = build(buckets, members, seed, &mut draws);
                let mut counts = vec![0u32; members as usize + 1];
                for &h in g.bucket_owners() {
                    counts[h as usize] += 1;
                }
                let max = f64::from(*counts[1..].iter().max().expect("members")) / ideal;
                let min = f64::from(*counts[1..].iter().min().expect("members")) / ideal;
                max_sum += max;
                min_sum += min;
                max_worst = max_worst.max(max);
                min_worst = min_worst.min(min);
            }
            let n = SEEDS as f64;
            println!(
                "| {buckets} | {members} | {:.3} | {:.3} | {:.3} | {:.3} |",
                max_sum / n,
                max_worst,
                min_sum / n,
                min_worst
            );
        }
    }
    // Build cost: a table is rebuilt on the control thread on every change to its group.
    for (label, weight) in [("equal weights", 1u32), ("weights 1..=4", 0)] {
        let mut times = Vec::with_capacity(REPEATS);
        for _ in 0..REPEATS {
            let seed = next(&mut draws);
            let mut g = ResilientGroup::new(4096, GroupMode::Rendezvous, seed).expect("valid");
            for hop in 1..64 {
                let w = if weight == 0 { 1 + hop % 4 } else { weight };
                g.add_member(hop, w).expect("valid member");
                g.set_maglev_key(hop, next(&mut draws))
                    .expect("listed member");
            }
            let start = Instant::now();
            // The 64th member: one full rebuild of 4096 x 64 ranks.
            g.add_member(64, weight.max(1)).expect("valid member");
            times.push(start.elapsed());
            std::hint::black_box(g.bucket_owners());
        }
        times.sort_unstable();
        println!(
            "\nbuild of 4096 buckets x 64 members ({label}): median {:?}, min {:?}, max {:?} ({REPEATS} builds)",
            times[REPEATS / 2],
            times[0],
            times[REPEATS - 1]
        );
    }
}
