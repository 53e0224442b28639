//! [`Eal`]: DPDK's Environment Abstraction Layer, initialised once per process.

use std::ffi::{CStr, CString, c_char, c_int};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use ecmp_dpdk_sys as sys;

use super::DpdkError;

/// The program name put in front of the EAL arguments (DPDK parses argv, program name first).
const PROGRAM: &str = "ecmpfwd";

static ATTEMPTED: AtomicBool = AtomicBool::new(false);
static EAL: OnceLock<Eal> = OnceLock::new();

/// Proof that the EAL is initialised; everything DPDK in this module takes one.
///
/// DPDK can initialise its EAL once per process, and not again after a failure, so
/// [`Eal::init`] succeeds at most once and later calls fail with
/// [`DpdkError::AlreadyInitialised`]; [`Eal::get`] returns the initialised one.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

impl Eal {
    /// Initialises the EAL with `args` (EAL options only, e.g. `["--no-huge", "-m", "256",
    /// "--file-prefix", "x", "--vdev", "net_null0"]`; the program name is added).
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<&'static Eal, DpdkError> {
        if ATTEMPTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::AlreadyInitialised);
        }
        let args: Vec<String> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 2);
        for arg in std::iter::once(PROGRAM).chain(args.iter().map(String::as_str)) {
            let c = CString::new(arg).map_err(|_| DpdkError::NulInArgument {
                arg: arg.to_owned(),
            })?;
            // The EAL keeps pointers into argv for the life of the process (argv[0] becomes the
            // syslog identity) and may permute the array, so the strings are leaked on purpose:
            // this runs once per process.
            argv.push(c.into_raw());
        }
        argv.push(std::ptr::null_mut());
        let argc = c_int::try_from(argv.len() - 1)
            .map_err(|_| DpdkError::Config("too many EAL arguments".into()))?;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a null pointer, all
        // leaked (they outlive the process's use of them); this is the only rte_eal_init call
        // of the process (ATTEMPTED).
        let rc = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        // The array itself may go; the strings it pointed to are leaked above.
        drop(argv);
        if rc < 0 {
            let errno = rte_errno();
            return Err(match errno {
                libc::ENOMEM => DpdkError::NoMemory {
                    what: "the EAL".into(),
                    message: strerror(errno),
                },
                libc::EALREADY => DpdkError::AlreadyInitialised,
                _ => DpdkError::Eal {
                    args,
                    errno,
                    message: strerror(errno),
                },
            });
        }
        Ok(EAL.get_or_init(|| Eal { args }))
    }

    /// The EAL, if [`Eal::init`] succeeded in this process.
    pub fn get() -> Option<&'static Eal> {
        EAL.get()
    }

    /// The arguments the EAL was initialised with (without the program name).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Makes the calling thread a DPDK lcore, so its mbuf allocations and frees go through the
    /// pools' per-lcore caches rather than the shared ring (a worker calls this once, at
    /// start). A thread that does not still works, only slower.
    pub fn register_thread(&self) -> Result<(), DpdkError> {
        // SAFETY: the EAL is initialised (self exists); the call only touches EAL state.
        let rc = unsafe { sys::rte_thread_register() };
        if rc < 0 {
            let errno = rte_errno();
            return Err(DpdkError::Config(format!(
                "registering the thread as a DPDK lcore: {} (more worker threads than RTE_MAX_LCORE?)",
                strerror(errno)
            )));
        }
        Ok(())
    }

    /// The calling thread's lcore id, if it is an EAL thread or registered.
    pub fn lcore_id(&self) -> Option<u32> {
        // SAFETY: reads a thread-local of the EAL.
        let id = unsafe { sys::ecmp_rte_lcore_id() };
        (id != sys::LCORE_ID_ANY).then_some(id)
    }
}

/// rte_errno of the calling thread.
pub(crate) fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local of the EAL; valid on any thread.
    unsafe { sys::ecmp_rte_errno() }
}

/// DPDK's description of an errno (its own codes or the C library's).
pub(crate) fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string (static, or in a
    // thread-local buffer) that stays valid until the next call on this thread; it is copied
    // out at once.
    unsafe { CStr::from_ptr(sys::rte_strerror(errno)) }
        .to_string_lossy()
        .into_owned()
}
