//! Choosing a server within an upstream: smooth weighted round robin, the
//! sequence nginx produces (servers a=5, b=1, c=1 give a a b a c a a, never
//! five a's in a row). State is per worker, so no two workers contend for it.

use std::cell::RefCell;

pub struct RoundRobin {
    weights: Vec<i64>,
    total: i64,
    current: RefCell<Vec<i64>>,
}

impl RoundRobin {
    pub fn new(weights: impl IntoIterator<Item = u32>) -> RoundRobin {
        let weights: Vec<i64> = weights.into_iter().map(i64::from).collect();
        let total = weights.iter().sum();
        let current = RefCell::new(vec![0; weights.len()]);
        RoundRobin {
            weights,
            total,
            current,
        }
    }

    /// The next server index.
    pub fn next(&self) -> usize {
        if self.weights.len() == 1 {
            return 0;
        }
        let mut current = self.current.borrow_mut();
        let mut best = 0;
        for i in 0..self.weights.len() {
            current[i] += self.weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= self.total;
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_sequence() {
        let rr = RoundRobin::new([5, 1, 1]);
        let seq: Vec<usize> = (0..7).map(|_| rr.next()).collect();
        assert_eq!(seq, [0, 0, 1, 0, 2, 0, 0]);
        let rr = RoundRobin::new([1, 2]);
        let seq: Vec<usize> = (0..6).map(|_| rr.next()).collect();
        assert_eq!(seq, [1, 0, 1, 1, 0, 1]);
    }

    #[test]
    fn single_server() {
        let rr = RoundRobin::new([3]);
        assert!((0..5).all(|_| rr.next() == 0));
    }
}
