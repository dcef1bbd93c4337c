// Whether this test binary runs under a sanitizer. Resident-memory bounds
// mean nothing there: ASan keeps freed memory in its quarantine (and its own
// allocator ignores malloc_trim), TSan maps shadow memory for everything
// touched. Tests still run the scenario; they skip only the memory figure.
#pragma once

namespace cleave::test {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kUnderSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kUnderSanitizer = true;
#else
constexpr bool kUnderSanitizer = false;
#endif
#else
constexpr bool kUnderSanitizer = false;
#endif

}  // namespace cleave::test
