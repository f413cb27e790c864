# 32-bit ARM boards (BeagleBone Black, Pi Zero 2 W in 32-bit mode...): Debian armhf (ARMv7, VFPv3-D16, Thumb-2).
set(CMAKE_SYSTEM_PROCESSOR arm)
set(FERRY_TRIPLE arm-linux-gnueabihf)
set(FERRY_DEB_ARCH armhf)
set(FERRY_QEMU qemu-arm)
include(${CMAKE_CURRENT_LIST_DIR}/common.cmake)
