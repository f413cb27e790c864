# Shared settings for the board toolchains. The including file sets FERRY_TRIPLE and CMAKE_SYSTEM_PROCESSOR,
# FERRY_DEB_ARCH and FERRY_QEMU; everything else is here.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${FERRY_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${FERRY_TRIPLE}-g++)

# The sysroot is built by toolchains/make-sysroot.sh from Debian's packages (never co-installed).
if(NOT FERRY_SYSROOT)
  set(FERRY_SYSROOT ${CMAKE_CURRENT_LIST_DIR}/../build/sysroot-${FERRY_DEB_ARCH})
endif()
get_filename_component(FERRY_SYSROOT ${FERRY_SYSROOT} ABSOLUTE)
if(NOT EXISTS ${FERRY_SYSROOT}/usr/include)
  message(FATAL_ERROR "No sysroot at ${FERRY_SYSROOT}: run toolchains/make-sysroot.sh ${FERRY_DEB_ARCH}")
endif()
# Try-compile projects must see the same values.
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES FERRY_SYSROOT FERRY_TRIPLE FERRY_DEB_ARCH FERRY_QEMU)

set(CMAKE_SYSROOT ${FERRY_SYSROOT})
set(CMAKE_FIND_ROOT_PATH ${FERRY_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
set(CMAKE_LIBRARY_ARCHITECTURE ${FERRY_TRIPLE})

# Transitive shared-library dependencies (libssl behind Paho, ...) resolve inside the sysroot.
set(_ferry_rpath_link "-Wl,-rpath-link,${FERRY_SYSROOT}/lib/${FERRY_TRIPLE}:${FERRY_SYSROOT}/usr/lib/${FERRY_TRIPLE}")
set(CMAKE_EXE_LINKER_FLAGS_INIT "${_ferry_rpath_link}")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "${_ferry_rpath_link}")

# ctest in a cross build dir runs the ARM binaries under qemu-user, with the sysroot as library prefix.
set(CMAKE_CROSSCOMPILING_EMULATOR ${FERRY_QEMU} -L ${FERRY_SYSROOT})
