# 64-bit ARM boards (Raspberry Pi 4, CM4, i.MX8...): Debian arm64.
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FERRY_TRIPLE aarch64-linux-gnu)
set(FERRY_DEB_ARCH arm64)
set(FERRY_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
