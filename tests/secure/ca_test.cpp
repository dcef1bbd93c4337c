#include "secure/ca.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>

#include "secure/pem_files.h"
#include "tests/support/shared_data.h"

namespace cleave::secure {
namespace {

namespace fs = std::filesystem;

mode_t mode_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0) << path;
  return info.st_mode & 07777;
}

// OpenSSL's verdict on `cert` against the CA (and CRL when given).
int verify(const std::string& ca_dir, const std::string& cert_path, bool with_crl) {
  X509StorePtr store(X509_STORE_new());
  X509Ptr ca = read_certificate(ca_paths(ca_dir).cert_path);
  X509_STORE_add_cert(store.get(), ca.get());
  X509CrlPtr crl;
  if (with_crl) {
    crl = read_crl(ca_paths(ca_dir).crl_path);
    X509_STORE_add_crl(store.get(), crl.get());
    X509_STORE_set_flags(store.get(), X509_V_FLAG_CRL_CHECK);
  }
  X509Ptr cert = read_certificate(cert_path);
  std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> context(X509_STORE_CTX_new(),
                                                                           X509_STORE_CTX_free);
  X509_STORE_CTX_init(context.get(), store.get(), cert.get(), nullptr);
  X509_STORE_CTX_set_purpose(context.get(), X509_PURPOSE_SSL_CLIENT);
  if (X509_verify_cert(context.get()) == 1) return X509_V_OK;
  return X509_STORE_CTX_get_error(context.get());
}

int revoked_count(const std::string& ca_dir) {
  X509CrlPtr crl = read_crl(ca_paths(ca_dir).crl_path);
  STACK_OF(X509_REVOKED)* revoked = X509_CRL_get_REVOKED(crl.get());
  return revoked ? sk_X509_REVOKED_num(revoked) : 0;  // an empty CRL has no list at all
}

long crl_number(const std::string& ca_dir) {
  X509CrlPtr crl = read_crl(ca_paths(ca_dir).crl_path);
  Asn1IntegerPtr number(
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl.get(), NID_crl_number, nullptr, nullptr)));
  return number ? ASN1_INTEGER_get(number.get()) : -1;
}

class CaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::scratch_dir(std::string("secure_ca_") +
                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ca_dir_ = root_ + "/ca";
    ca_init(ca_dir_, "test-federation");
  }
  std::string root_, ca_dir_;
};

TEST_F(CaTest, InitWritesCaFilesWithSafeModes) {
  const CaPaths paths = ca_paths(ca_dir_);
  EXPECT_EQ(mode_of(paths.key_path), 0600u);
  EXPECT_EQ(mode_of(paths.cert_path), 0644u);
  EXPECT_EQ(mode_of(paths.crl_path), 0644u);
  X509Ptr ca = read_certificate(paths.cert_path);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);
  EXPECT_EQ(X509_get_key_usage(ca.get()), uint32_t(KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  EvpPkeyPtr key = read_private_key(paths.key_path);
  EXPECT_EQ(EVP_PKEY_get_base_id(key.get()), EVP_PKEY_EC);
  EXPECT_EQ(X509_check_private_key(ca.get(), key.get()), 1);
  EXPECT_EQ(revoked_count(ca_dir_), 0);
  EXPECT_TRUE(ca_index(ca_dir_).empty());
}

TEST_F(CaTest, InitRefusesToReplaceACaUnlessForced) {
  const std::string before = read_file(ca_paths(ca_dir_).key_path);
  EXPECT_THROW(ca_init(ca_dir_, "again"), std::runtime_error);
  EXPECT_EQ(read_file(ca_paths(ca_dir_).key_path), before);
  ca_init(ca_dir_, "again", kDefaultCaDays, /*force=*/true);
  EXPECT_NE(read_file(ca_paths(ca_dir_).key_path), before);
}

TEST_F(CaTest, IssueWritesNodeFilesThatVerifyAgainstTheCa) {
  const IssuedNode node = ca_issue(ca_dir_, NodeRole::client, "site-a", root_ + "/site-a");
  EXPECT_EQ(mode_of(node.identity.key_path), 0600u);
  EXPECT_EQ(mode_of(node.identity.cert_path), 0644u);
  EXPECT_EQ(mode_of(node.identity.ca_path), 0644u);
  EXPECT_EQ(mode_of(*node.identity.crl_path), 0644u);
  EXPECT_EQ(verify(ca_dir_, node.identity.cert_path, true), X509_V_OK);

  X509Ptr cert = read_certificate(node.identity.cert_path);
  const auto identity = identity_of(cert.get());
  ASSERT_TRUE(identity.has_value());
  EXPECT_EQ(identity->node_id, "site-a");
  EXPECT_EQ(identity->role, NodeRole::client);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_EQ(X509_get_extended_key_usage(cert.get()), uint32_t(XKU_SSL_SERVER | XKU_SSL_CLIENT));

  // Random 128-bit serial, recorded in the index.
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert.get()), nullptr));
  EXPECT_GT(BN_num_bits(serial.get()), 64);
  EXPECT_LE(BN_num_bits(serial.get()), 127);
  const auto index = ca_index(ca_dir_);
  ASSERT_EQ(index.size(), 1u);
  EXPECT_EQ(index[0].serial_hex, node.serial_hex);
  EXPECT_EQ(index[0].name, "site-a");
  EXPECT_FALSE(index[0].revoked);

  // Valid from now for 365 days.
  const time_t now = std::time(nullptr);
  int days = 0, seconds = 0;
  ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert.get()));
  EXPECT_TRUE(days == 365 || (days == 364 && seconds > 86000)) << days << "d " << seconds << "s";
  EXPECT_LE(X509_cmp_time(X509_get0_notBefore(cert.get()), const_cast<time_t*>(&now)), 0);
}

TEST_F(CaTest, PrivateKeyModeIgnoresTheUmask) {
  const mode_t old = ::umask(0);
  const IssuedNode node = ca_issue(ca_dir_, NodeRole::aggregator, "agg", root_ + "/agg");
  ::umask(077);
  const IssuedNode other = ca_issue(ca_dir_, NodeRole::aggregator, "agg2", root_ + "/agg");
  ::umask(old);
  EXPECT_EQ(mode_of(node.identity.key_path), 0600u);
  EXPECT_EQ(mode_of(other.identity.key_path), 0600u);
  EXPECT_EQ(mode_of(other.identity.cert_path), 0644u);
}

TEST_F(CaTest, IssueRefusesToOverwriteUnlessForced) {
  const IssuedNode first = ca_issue(ca_dir_, NodeRole::client, "site-a", root_ + "/n");
  EXPECT_THROW(ca_issue(ca_dir_, NodeRole::client, "site-a", root_ + "/n"), std::runtime_error);
  IssueOptions force;
  force.force = true;
  const IssuedNode second = ca_issue(ca_dir_, NodeRole::client, "site-a", root_ + "/n", force);
  EXPECT_NE(first.serial_hex, second.serial_hex);
  EXPECT_EQ(ca_index(ca_dir_).size(), 2u);
}

TEST_F(CaTest, IssueRefusesANodeDirectoryOfAnotherCa) {
  ca_issue(ca_dir_, NodeRole::client, "site-a", root_ + "/n");
  ca_init(root_ + "/other-ca", "other");
  EXPECT_THROW(ca_issue(root_ + "/other-ca", NodeRole::client, "site-b", root_ + "/n"),
               std::runtime_error);
}

TEST_F(CaTest, RejectsBadNamesRolesAndLifetimes) {
  for (const std::string& name : std::vector<std::string>{"", "../evil", "a b", "-dash", ".hidden", "x/y",
           std::string(65, 'a'), std::string("nul\0x", 5)}) {
    EXPECT_THROW(ca_issue(ca_dir_, NodeRole::client, name, root_ + "/bad"), std::invalid_argument)
        << name;
  }
  EXPECT_NO_THROW(validate_node_name("Site_7.eu-west"));
  EXPECT_THROW(parse_role("admin"), std::invalid_argument);
  EXPECT_EQ(parse_role("split-server"), NodeRole::split_server);
  IssueOptions zero_days;
  zero_days.days = 0;
  EXPECT_THROW(ca_issue(ca_dir_, NodeRole::client, "site-z", root_ + "/z", zero_days),
               std::invalid_argument);
}

TEST_F(CaTest, ShiftedWindowYieldsAnExpiredCertificate) {
  IssueOptions expired;
  expired.days = 1;
  expired.not_before_offset_s = -2 * 86400;
  const IssuedNode node = ca_issue(ca_dir_, NodeRole::client, "old", root_ + "/old", expired);
  EXPECT_EQ(verify(ca_dir_, node.identity.cert_path, true), X509_V_ERR_CERT_HAS_EXPIRED);
}

TEST_F(CaTest, RevocationRoundTripsThroughTheCrl) {
  const IssuedNode a = ca_issue(ca_dir_, NodeRole::client, "site-a", root_ + "/a");
  const IssuedNode b = ca_issue(ca_dir_, NodeRole::client, "site-b", root_ + "/b");
  const long number_before = crl_number(ca_dir_);

  const Revocation revocation = ca_revoke(ca_dir_, a.identity.cert_path);
  EXPECT_EQ(revocation.serial_hex, a.serial_hex);
  EXPECT_EQ(revocation.node_id, "site-a");
  EXPECT_FALSE(revocation.already_revoked);
  EXPECT_EQ(revoked_count(ca_dir_), 1);
  EXPECT_EQ(crl_number(ca_dir_), number_before + 1);

  // The CRL is signed by the CA and lists exactly a's serial.
  X509CrlPtr crl = read_crl(ca_paths(ca_dir_).crl_path);
  X509Ptr ca = read_certificate(ca_paths(ca_dir_).cert_path);
  EXPECT_EQ(X509_CRL_verify(crl.get(), X509_get0_pubkey(ca.get())), 1);
  X509Ptr a_cert = read_certificate(a.identity.cert_path);
  X509_REVOKED* entry = nullptr;
  EXPECT_EQ(X509_CRL_get0_by_cert(crl.get(), &entry, a_cert.get()), 1);

  EXPECT_EQ(verify(ca_dir_, a.identity.cert_path, true), X509_V_ERR_CERT_REVOKED);
  EXPECT_EQ(verify(ca_dir_, b.identity.cert_path, true), X509_V_OK);

  const auto index = ca_index(ca_dir_);
  ASSERT_EQ(index.size(), 2u);
  EXPECT_TRUE(index[0].revoked);
  EXPECT_GT(index[0].revoked_at_unix, 0);
  EXPECT_FALSE(index[1].revoked);

  EXPECT_TRUE(ca_revoke(ca_dir_, a.identity.cert_path).already_revoked);
  EXPECT_EQ(revoked_count(ca_dir_), 1);

  ca_refresh_crl(ca_dir_, 30);
  EXPECT_EQ(revoked_count(ca_dir_), 1);
  EXPECT_EQ(verify(ca_dir_, a.identity.cert_path, true), X509_V_ERR_CERT_REVOKED);
}

TEST_F(CaTest, RevokeRefusesACertificateOfAnotherCa) {
  ca_init(root_ + "/other-ca", "other");
  const IssuedNode foreign = ca_issue(root_ + "/other-ca", NodeRole::client, "x", root_ + "/x");
  EXPECT_THROW(ca_revoke(ca_dir_, foreign.identity.cert_path), std::runtime_error);
  EXPECT_EQ(revoked_count(ca_dir_), 0);
}

TEST_F(CaTest, IndexWithAWrongMagicIsRefused) {
  write_file(ca_paths(ca_dir_).index_path, "serial\trole\n", kPublicFileMode, true);
  EXPECT_THROW(ca_index(ca_dir_), std::runtime_error);
}

}  // namespace
}  // namespace cleave::secure
