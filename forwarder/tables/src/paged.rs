//! A vector split into fixed pages behind `Arc`s: cloning it copies one pointer per page, and
//! changing an element copies only that element's page when a clone still shares it.
//!
//! This is what keeps a publication cheap when the control plane holds many groups: a snapshot
//! takes a clone (O(len / PAGE) reference-count increments), and a change to one group copies
//! one page of [`PAGE`] pointers instead of the whole vector. A read costs one more dependent load
//! than a flat `Vec` (the page pointer, hot in cache for the pages in use).

use std::sync::Arc;

/// Elements per page.
pub const PAGE: usize = 1024;

/// See the module doc. Every page holds [`PAGE`] elements; those at or beyond `len` are the
/// filler (so growing writes into a page instead of reallocating it).
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pages: Vec<Arc<[T]>>,
    len: usize,
    filler: T,
}

impl<T: Clone> Paged<T> {
    /// An empty vector whose unused slots hold `filler`.
    pub fn new(filler: T) -> Self {
        Paged {
            pages: Vec::new(),
            len: 0,
            filler,
        }
    }

    /// Number of elements.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The element at `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        self.pages.get(i / PAGE)?.get(i % PAGE)
    }

    /// Replaces the element at `i` (copying its page if a clone shares it); false when `i` is
    /// out of range.
    pub fn set(&mut self, i: usize, value: T) -> bool {
        if i >= self.len {
            return false;
        }
        self.write(i, value);
        true
    }

    fn write(&mut self, i: usize, value: T) -> bool {
        let Some(page) = self.pages.get_mut(i / PAGE) else {
            return false;
        };
        if let Some(slot) = Arc::get_mut(page).and_then(|p| p.get_mut(i % PAGE)) {
            *slot = value;
            return true;
        }
        let mut copy = page.to_vec();
        if let Some(slot) = copy.get_mut(i % PAGE) {
            *slot = value;
        }
        *page = copy.into();
        true
    }

    /// Appends `value`.
    pub fn push(&mut self, value: T) {
        if self.len == self.pages.len() * PAGE {
            self.pages.push(Arc::from(vec![self.filler.clone(); PAGE]));
        }
        self.len += 1;
        self.write(self.len - 1, value);
    }

    /// Removes and returns the last element.
    pub fn pop(&mut self) -> Option<T> {
        let i = self.len.checked_sub(1)?;
        let value = self.get(i).cloned()?;
        let filler = self.filler.clone();
        self.write(i, filler);
        self.len = i;
        if self.len <= (self.pages.len().saturating_sub(1)) * PAGE {
            self.pages.truncate(self.len.div_ceil(PAGE));
        }
        Some(value)
    }

    /// The elements in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        self.pages.iter().flat_map(|p| p.iter()).take(self.len)
    }

    /// The elements of `v`, with `filler` in unused slots.
    pub fn from_vec(v: Vec<T>, filler: T) -> Self {
        let mut p = Paged::new(filler);
        for x in v {
            p.push(x);
        }
        p
    }
}

impl<T: Clone> std::ops::Index<usize> for Paged<T> {
    type Output = T;

    /// Like a `Vec`'s: panics when `i` is out of range (use [`Paged::get`] where that can be).
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(x) => x,
            None => panic!("index {i} out of range for a Paged of {}", self.len),
        }
    }
}

impl<T: Clone + PartialEq> PartialEq for Paged<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_change_copies_only_its_page() {
        let mut a = Paged::from_vec((0..3000).collect(), 0u32);
        let b = a.clone();
        assert!(a.set(2500, 7));
        assert_eq!(a.get(2500), Some(&7));
        assert_eq!(b.get(2500), Some(&2500), "the clone keeps its value");
        assert!(
            Arc::ptr_eq(&a.pages[0], &b.pages[0]),
            "untouched pages are shared"
        );
        assert!(Arc::ptr_eq(&a.pages[1], &b.pages[1]));
        assert!(!Arc::ptr_eq(&a.pages[2], &b.pages[2]));
        assert!(!a.set(3000, 1), "out of range");
        assert_eq!(a.get(3000), None);
    }

    proptest! {
        #[test]
        fn behaves_like_a_vec(ops in prop::collection::vec((0u8..3, 0usize..3000, any::<u32>()), 0..400)) {
            let mut p = Paged::new(0u32);
            let mut v: Vec<u32> = Vec::new();
            let mut snapshots = Vec::new();
            for (op, i, x) in ops {
                match op {
                    0 => { p.push(x); v.push(x); }
                    1 => { prop_assert_eq!(p.pop(), v.pop()); }
                    _ => {
                        let ok = i < v.len();
                        prop_assert_eq!(p.set(i, x), ok);
                        if ok { v[i] = x; }
                    }
                }
                snapshots.push((p.clone(), v.clone()));
                prop_assert_eq!(p.len(), v.len());
            }
            // Every clone still reads as the vector it was taken from.
            for (p, v) in snapshots {
                prop_assert_eq!(p.iter().copied().collect::<Vec<_>>(), v.clone());
                for (i, x) in v.iter().enumerate() {
                    prop_assert_eq!(p.get(i), Some(x));
                }
            }
        }
    }
}
