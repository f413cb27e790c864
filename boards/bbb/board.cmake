# BeagleBone Black (AM335x): 32-bit armhf, Cortex-A8 with NEON, 512 MB RAM, eMMC or SD card.
# The LMDB map (storage.map_size in ferry.toml) must fit a 32-bit address space: 1 GiB is safe.
if(NOT CMAKE_SYSTEM_PROCESSOR STREQUAL "arm")
  message(FATAL_ERROR "board bbb needs toolchains/arm-linux-gnueabihf.cmake")
endif()
set(FERRY_CPU_FLAGS -mcpu=cortex-a8 -mfpu=neon)
