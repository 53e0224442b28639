//! [`HugeArray`]: a fixed-length table on huge pages when it is big enough to use them.

use std::ops::{Deref, DerefMut};

use crate::error::MemError;
use crate::policy::{HugePages, policy};
use crate::region::{HUGE_PAGE, Typed};
use crate::smaps::{Backing, backing_of};
use crate::{Placement, TableMemory};

mod sealed {
    pub trait Sealed {}
}

/// Plain integers, whose zero value is all-zero bytes: what [`HugeArray::zeroed`] may leave to
/// the kernel's zero fill. Sealed, so no other type can claim it.
pub trait Zeroed: Copy + sealed::Sealed {
    /// The value of all-zero bytes.
    const ZERO: Self;
}

macro_rules! zeroed {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl Zeroed for $t {
            const ZERO: Self = 0;
        }
    )*};
}
zeroed!(u8, u16, u32, u64, u128, usize);

/// A fixed-length slice of `T` for a big table: on a [`Region`](crate::Region) when it spans at
/// least one huge page, on the heap otherwise. Dereferences to `[T]`.
///
/// The infallible constructors and `Clone` follow the process policy ([`policy`]), except that
/// a `require` the pool cannot meet falls back to `auto` rather than fail (start-up checks each
/// table's [`backing`](HugeArray::backing) and refuses to run when a big one is not on hugetlb;
/// a later clone that falls back shows in `ecmpctl stats`). The `try_` constructors never fall
/// back.
pub struct HugeArray<T: Copy> {
    store: Typed<T>,
    name: &'static str,
    policy: HugePages,
}

impl<T: Copy> HugeArray<T> {
    fn mapped(len: usize) -> bool {
        len.saturating_mul(size_of::<T>()) >= HUGE_PAGE
    }

    /// `len` copies of `value` for `table`, under `policy`; every element is written now, so
    /// the pages come from the calling thread's NUMA node.
    pub fn try_filled(
        table: &'static str,
        len: usize,
        value: T,
        policy: HugePages,
    ) -> Result<Self, MemError> {
        let store = if Self::mapped(len) {
            Typed::filled(table, len, value, policy)?
        } else {
            Typed::heap(vec![value; len].into_boxed_slice())
        };
        Ok(Self {
            store,
            name: table,
            policy,
        })
    }

    /// [`try_filled`](Self::try_filled) under the process policy (falling back as the type doc
    /// says).
    pub fn filled(table: &'static str, len: usize, value: T) -> Self {
        let p = policy();
        Self::try_filled(table, len, value, p)
            .or_else(|_| Self::try_filled(table, len, value, HugePages::Auto))
            .unwrap_or_else(|_| Self {
                store: Typed::heap(vec![value; len].into_boxed_slice()),
                name: table,
                policy: p,
            })
    }

    fn copy_of(table: &'static str, src: &[T], policy: HugePages) -> Self {
        let mapped = if Self::mapped(src.len()) {
            Typed::copied(table, src, policy)
                .or_else(|_| Typed::copied(table, src, HugePages::Auto))
                .ok()
        } else {
            None
        };
        Self {
            store: mapped.unwrap_or_else(|| Typed::heap(src.into())),
            name: table,
            policy,
        }
    }

    /// A copy `len` long: the first elements from `self`, the rest `fill` (for tables that grow).
    pub fn resized(&self, len: usize, fill: T) -> Self {
        let mut out = Self::try_filled(self.name, len, fill, self.policy)
            .unwrap_or_else(|_| Self::filled(self.name, len, fill));
        let keep = len.min(self.len());
        out[..keep].copy_from_slice(&self[..keep]);
        out
    }

    /// Which table this is.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The policy it was allocated under.
    pub fn policy(&self) -> HugePages {
        self.policy
    }

    /// How the kernel backs it now (read from /proc/self/smaps; a heap table reports the
    /// huge pages of the heap mapping holding it, at most its own length).
    pub fn backing(&self) -> Backing {
        match self.store.region() {
            Some(r) => r.backing(),
            None => backing_of(self.as_ptr() as usize, size_of_val(&**self)),
        }
    }

    /// Name, bytes and backing, for the start-up log and stats.
    pub fn memory(&self) -> TableMemory {
        TableMemory {
            name: self.name.to_owned(),
            bytes: size_of_val(&**self),
            backing: self.backing(),
        }
    }

    /// Where it lives, to read its backing later from another thread.
    pub fn placement(&self) -> Placement {
        Placement {
            name: self.name,
            addr: self.as_ptr() as usize,
            bytes: size_of_val(&**self),
        }
    }
}

impl<T: Zeroed> HugeArray<T> {
    /// `len` zeros for `table` under `policy`. Big tables are left untouched: untouched pages
    /// cost no memory (a zeroed `Vec` behaved the same), and a table built by control is read
    /// by every worker anyway.
    pub fn try_zeroed(
        table: &'static str,
        len: usize,
        policy: HugePages,
    ) -> Result<Self, MemError> {
        let store = if Self::mapped(len) {
            Typed::zeroed(table, len, policy)?
        } else {
            Typed::heap(vec![T::ZERO; len].into_boxed_slice())
        };
        Ok(Self {
            store,
            name: table,
            policy,
        })
    }

    /// [`try_zeroed`](Self::try_zeroed) under the process policy (falling back as the type doc
    /// says).
    pub fn zeroed(table: &'static str, len: usize) -> Self {
        let p = policy();
        Self::try_zeroed(table, len, p)
            .or_else(|_| Self::try_zeroed(table, len, HugePages::Auto))
            .unwrap_or_else(|_| Self {
                store: Typed::heap(vec![T::ZERO; len].into_boxed_slice()),
                name: table,
                policy: p,
            })
    }
}

impl<T: Copy> Deref for HugeArray<T> {
    type Target = [T];

    #[inline(always)]
    fn deref(&self) -> &[T] {
        self.store.as_slice()
    }
}

impl<T: Copy> DerefMut for HugeArray<T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut [T] {
        self.store.as_mut_slice()
    }
}

impl<T: Copy> Clone for HugeArray<T> {
    /// A copy with its own memory, under the policy the original was allocated with.
    fn clone(&self) -> Self {
        Self::copy_of(self.name, self, self.policy)
    }
}

impl<T: Copy> std::fmt::Debug for HugeArray<T> {
    /// Name, length and policy: the contents of a table of millions are no use in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("name", &self.name)
            .field("len", &self.len())
            .field("policy", &self.policy)
            .finish()
    }
}
