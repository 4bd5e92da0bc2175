SUMMARY = "Streembit edge agent: P2P overlay peer, a signing identity per device"
DESCRIPTION = "Joins the Streembit overlay (a Kademlia DHT over QUIC) with its own \
               Ed25519 identity and gives every local device behind the gateway \
               (Modbus RTU/TCP, I2C sensors, MQTT) its own Ed25519 identity; every \
               reading is a signed COSE_Sign1 envelope. Runs as the systemd service \
               streembit.service under the user streembit."
HOMEPAGE = "https://example.invalid/streembit/edge-agent"
BUGTRACKER = "https://example.invalid/streembit/edge-agent/issues"
SECTION = "net"
CVE_PRODUCT = "streembit"
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://LICENSE-MIT;md5=566e89a6fb401c9290e27ae593d139cd \
                    file://LICENSE-APACHE;md5=3b83ef96387f14655fc854ddc3c6bd57"

# The revision is pinned; bump SRCREV with each release, and regenerate
# streembit-crates.inc (scripts/yocto-crates.py) from that revision's
# Cargo.lock. To build a local checkout instead, see the README (externalsrc).
SRC_URI = "git://example.invalid/streembit/edge-agent.git;protocol=https;branch=main"
SRCREV = "5389d9e05dcd20ffec152a0ae250e8608eaf9269"

S = "${UNPACKDIR}/${BB_GIT_DEFAULT_DESTSUFFIX}"

require ${BPN}-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# A workspace: build the agent crate (the `streembit` binary) only, against
# the workspace's Cargo.lock.
CARGO_SRC_DIR = "agent"
CARGO_LOCK_SRC_DIR = "${S}"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/systemd/streembit.service ${D}${systemd_system_unitdir}/
    sed -i -e 's,/usr/bin/streembit,${bindir}/streembit,' \
        ${D}${systemd_system_unitdir}/streembit.service
    # The layer's releases carry systemd 257 or newer: Type=notify-reload.
    install -d ${D}${systemd_system_unitdir}/streembit.service.d
    install -m 0644 ${S}/systemd/notify-reload.conf ${D}${systemd_system_unitdir}/streembit.service.d/

    # The unit's Documentation=man:streembit(1); the page is generated
    # from the CLI definition and kept in docs/ (a cross build cannot run
    # the binary to make it). It lands in ${PN}-doc.
    install -d ${D}${mandir}/man1
    install -m 0644 ${S}/docs/streembit.1 ${D}${mandir}/man1/

    install -d ${D}${sysconfdir}/streembit/bridges.d
    install -m 0644 ${S}/etc/agent.example.toml ${D}${sysconfdir}/streembit/agent.toml

    # Bridge files start devices: the examples go to the documentation only.
    install -d ${D}${docdir}/${BPN}/examples/bridges.d
    install -m 0644 ${S}/examples/bridges.d/*.toml ${D}${docdir}/${BPN}/examples/bridges.d/
}

SYSTEMD_SERVICE:${PN} = "streembit.service"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

# The unit runs as streembit with SupplementaryGroups=dialout i2c; OE's
# base-passwd has dialout, i2c is created here when missing.
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system --force i2c"
USERADD_PARAM:${PN} = "--system --home-dir ${localstatedir}/lib/streembit --no-create-home \
                       --shell ${base_sbindir}/nologin --user-group --groups dialout,i2c streembit"

CONFFILES:${PN} = "${sysconfdir}/streembit/agent.toml"
FILES:${PN} += "${sysconfdir}/streembit ${systemd_system_unitdir}/streembit.service.d"

# [mqtt] embedded = true (the default) runs mosquitto as the agent's child,
# confined by the accounts of the bridge files. mosquitto is in
# meta-networking (meta-openembedded): recommended, so an image without that
# layer still builds; the agent then says so at start, and
# `[mqtt] embedded = false` in agent.toml runs it without a local broker.
RRECOMMENDS:${PN} += "mosquitto"
