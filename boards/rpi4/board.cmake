# Raspberry Pi 4 / CM4 running 64-bit Debian or Raspberry Pi OS: aarch64, Cortex-A72, 1-8 GB RAM.
if(NOT CMAKE_SYSTEM_PROCESSOR STREQUAL "aarch64")
  message(FATAL_ERROR "board rpi4 needs toolchains/aarch64-linux-gnu.cmake")
endif()
set(FERRY_CPU_FLAGS -mcpu=cortex-a72)
