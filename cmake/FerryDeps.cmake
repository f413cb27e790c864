# Every dependency comes from Debian's packages. In a cross build, find_* searches the sysroot made by
# toolchains/make-sysroot.sh (CMAKE_FIND_ROOT_PATH), so the same calls work for host and boards.
include(CheckIncludeFileCXX)

function(ferry_find_lib var name header)
  find_library(${var}_LIBRARY NAMES ${name} REQUIRED)
  if(header)
    find_path(${var}_INCLUDE_DIR NAMES ${header} REQUIRED)
  endif()
  add_library(ferry::${var} UNKNOWN IMPORTED GLOBAL)
  set_target_properties(ferry::${var} PROPERTIES IMPORTED_LOCATION "${${var}_LIBRARY}")
  if(header)
    set_target_properties(ferry::${var} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${${var}_INCLUDE_DIR}")
  endif()
endfunction()

find_package(Threads REQUIRED)
ferry_find_lib(lmdb lmdb lmdb.h)
ferry_find_lib(zstd zstd zstd.h)
ferry_find_lib(mbedcrypto mbedcrypto mbedtls/sha256.h)
ferry_find_lib(mbedx509 mbedx509 mbedtls/x509_crt.h)
ferry_find_lib(mbedtls mbedtls mbedtls/ssl.h)
# Static sysroot links need the order ssl -> x509 -> crypto; shared ones do not mind.
set_property(TARGET ferry::mbedx509 APPEND PROPERTY INTERFACE_LINK_LIBRARIES ferry::mbedcrypto)
set_property(TARGET ferry::mbedtls APPEND PROPERTY INTERFACE_LINK_LIBRARIES ferry::mbedx509)
ferry_find_lib(paho_c paho-mqtt3as MQTTAsync.h)
ferry_find_lib(paho_c_sync paho-mqtt3cs MQTTClient.h)
ferry_find_lib(paho_cpp paho-mqttpp3 mqtt/async_client.h)
ferry_find_lib(rdkafka rdkafka librdkafka/rdkafka.h)
ferry_find_lib(sqlite3 sqlite3 sqlite3.h)
ferry_find_lib(microhttpd microhttpd microhttpd.h)
ferry_find_lib(tomlpp tomlplusplus toml++/toml.h)
# Lua 5.4 for pipeline expressions and scripts (Debian: liblua5.4-dev; headers in include/lua5.4).
find_library(lua_LIBRARY NAMES lua5.4 REQUIRED)
find_path(lua_INCLUDE_DIR NAMES lua.hpp PATH_SUFFIXES lua5.4 REQUIRED)
add_library(ferry::lua UNKNOWN IMPORTED GLOBAL)
set_target_properties(ferry::lua PROPERTIES IMPORTED_LOCATION "${lua_LIBRARY}" INTERFACE_INCLUDE_DIRECTORIES "${lua_INCLUDE_DIR}")
set_property(TARGET ferry::tomlpp APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS TOML_HEADER_ONLY=0)
set_property(TARGET ferry::paho_cpp APPEND PROPERTY INTERFACE_LINK_LIBRARIES ferry::paho_c Threads::Threads)

# Header-only libraries.
find_path(EXPECTED_INCLUDE_DIR NAMES tl/expected.hpp REQUIRED)
find_path(RAPIDJSON_INCLUDE_DIR NAMES rapidjson/document.h REQUIRED)
find_path(CLI11_INCLUDE_DIR NAMES CLI/CLI.hpp REQUIRED)
add_library(ferry::headers INTERFACE IMPORTED GLOBAL)
set_target_properties(ferry::headers PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
  "${EXPECTED_INCLUDE_DIR};${RAPIDJSON_INCLUDE_DIR};${CLI11_INCLUDE_DIR}")

if(FERRY_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
if(FERRY_BUILD_BENCH)
  find_package(benchmark REQUIRED)
endif()
