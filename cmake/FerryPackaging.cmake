# CPack: one .deb per architecture with ferryd, ferryctl, the default config (a conffile) and the systemd unit.
include(GNUInstallDirs)

set(FERRY_BOARD_CONFIG ${CMAKE_SOURCE_DIR}/boards/${FERRY_BOARD}/ferry.toml)
if(NOT EXISTS ${FERRY_BOARD_CONFIG})
  set(FERRY_BOARD_CONFIG ${CMAKE_SOURCE_DIR}/boards/host/ferry.toml)
endif()
install(FILES ${FERRY_BOARD_CONFIG} DESTINATION /etc/ferry COMPONENT ferry)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/ferryd.service DESTINATION /lib/systemd/system COMPONENT ferry)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT ferry)

if(CMAKE_SYSTEM_PROCESSOR STREQUAL "aarch64")
  set(FERRY_DEB_ARCH arm64)
elseif(CMAKE_SYSTEM_PROCESSOR STREQUAL "arm")
  set(FERRY_DEB_ARCH armhf)
else()
  set(FERRY_DEB_ARCH amd64)
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME ferry)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Ferry developers <ferry@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "store-and-forward event hub for edge gateways")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "Ferry ingests device telemetry over MQTT, stores every event in a durable\n LMDB log and forwards it to a central MQTT broker or Kafka cluster when the link returns.")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_ARCHITECTURE ${FERRY_DEB_ARCH})
set(CPACK_DEBIAN_FILE_NAME "ferry_${PROJECT_VERSION}_${FERRY_DEB_ARCH}.deb")
# Runtime libraries, pinned to the package names of Debian 12 (same names on every architecture).
set(CPACK_DEBIAN_PACKAGE_DEPENDS
  "libc6 (>= 2.36), libstdc++6 (>= 12), liblmdb0 (>= 0.9.24), libpaho-mqttpp3-1 (>= 1.2.0), libpaho-mqtt1.3 (>= 1.3.12), libzstd1, libmbedcrypto7, libmbedx509-1, libmbedtls14, libtomlplusplus3, libsqlite3-0 (>= 3.40), librdkafka1 (>= 2.0.2), liblua5.4-0 (>= 5.4.4), libmicrohttpd12 (>= 0.9.75)")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mosquitto")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/packaging/conffiles ${CMAKE_SOURCE_DIR}/packaging/postinst ${CMAKE_SOURCE_DIR}/packaging/prerm
  ${CMAKE_SOURCE_DIR}/packaging/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/packages)
# Ship stripped binaries (RelWithDebInfo builds carry full debug info); CMAKE_STRIP is the target's strip.
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL ferry)
set(CPACK_DEB_COMPONENT_INSTALL OFF)
include(CPack)
