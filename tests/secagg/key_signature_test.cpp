#include "secagg/key_signature.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "secure/ca.h"
#include "tests/support/shared_data.h"

namespace cleave::secagg {
namespace {

namespace fs = std::filesystem;

const std::string kKeys = "round 4 keys: c=... s=...";

class KeySignatureTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::scratch_dir(std::string("secagg_key_signature_") +
                              ::testing::UnitTest::GetInstance()->current_test_info()->name());
    ca_dir_ = root_ + "/ca";
    secure::ca_init(ca_dir_, "test-federation");
    fast_.durable = false;
    site_a_ = issue(secure::NodeRole::client, "site-a");
    site_b_ = issue(secure::NodeRole::client, "site-b");
    aggregator_ = issue(secure::NodeRole::aggregator, "hub");
  }
  void TearDown() override { fs::remove_all(root_); }

  secure::TlsIdentity issue(secure::NodeRole role, const std::string& name) {
    return secure::ca_issue(ca_dir_, role, name, root_ + "/nodes", fast_).identity;
  }

  // The CA and CRL a verifier trusts; the CRL from the CA directory, which
  // ca_revoke updates (the node directories hold copies made at issue).
  secure::TlsIdentity trust(bool with_crl) const {
    secure::TlsIdentity identity;
    identity.ca_path = secure::ca_paths(ca_dir_).cert_path;
    if (with_crl) identity.crl_path = secure::ca_paths(ca_dir_).crl_path;
    return identity;
  }

  std::string root_, ca_dir_;
  secure::IssueOptions fast_;
  secure::TlsIdentity site_a_, site_b_, aggregator_;
};

TEST_F(KeySignatureTest, SignatureOfTheNamedClientVerifies) {
  const KeySigner signer(site_a_);
  const std::string signature = signer.sign(kKeys);
  for (bool with_crl : {false, true}) {
    const KeyVerifier verifier(trust(with_crl));
    EXPECT_EQ(verifier.check("site-a", signer.certificate_pem(), kKeys, signature), std::nullopt);
  }
}

TEST_F(KeySignatureTest, NodeDirectoryIdentityWorksAsIs) {
  const KeySigner signer(site_b_);
  const KeyVerifier verifier(site_a_);  // the node's ca.crt and crl.pem copies
  EXPECT_EQ(verifier.check("site-b", signer.certificate_pem(), kKeys, signer.sign(kKeys)),
            std::nullopt);
}

TEST_F(KeySignatureTest, CertificateOfAnotherNodeIsRefused) {
  const KeySigner signer(site_a_);
  const KeyVerifier verifier(trust(true));
  const auto why = verifier.check("site-b", signer.certificate_pem(), kKeys, signer.sign(kKeys));
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "certificate presented for site-b names site-a");
}

TEST_F(KeySignatureTest, TamperedMessageIsRefused) {
  const KeySigner signer(site_a_);
  const KeyVerifier verifier(trust(true));
  const std::string signature = signer.sign(kKeys);
  std::string tampered = kKeys;
  tampered.back() ^= 1;
  const auto why = verifier.check("site-a", signer.certificate_pem(), tampered, signature);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "signature of site-a does not match its keys");
  EXPECT_TRUE(verifier.check("site-a", signer.certificate_pem(), kKeys, ""));
  EXPECT_TRUE(verifier.check("site-a", signer.certificate_pem(), kKeys, "not DER"));
}

TEST_F(KeySignatureTest, SignatureByAnotherKeyIsRefused) {
  const KeySigner site_a(site_a_), site_b(site_b_);
  const KeyVerifier verifier(trust(true));
  const auto why = verifier.check("site-a", site_a.certificate_pem(), kKeys, site_b.sign(kKeys));
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "signature of site-a does not match its keys");
}

TEST_F(KeySignatureTest, AggregatorCertificateIsRefused) {
  const KeySigner signer(aggregator_);
  const KeyVerifier verifier(trust(true));
  const auto why = verifier.check("hub", signer.certificate_pem(), kKeys, signer.sign(kKeys));
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "certificate of hub has role aggregator, not client");
}

TEST_F(KeySignatureTest, CertificateOfAnotherCaIsRefused) {
  const std::string other_ca = root_ + "/other-ca";
  secure::ca_init(other_ca, "impostor");
  const auto impostor =
      secure::ca_issue(other_ca, secure::NodeRole::client, "site-a", root_ + "/other-nodes", fast_);
  const KeySigner signer(impostor.identity);
  const KeyVerifier verifier(trust(true));
  const auto why = verifier.check("site-a", signer.certificate_pem(), kKeys, signer.sign(kKeys));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("does not verify against the federation CA"), std::string::npos) << *why;
}

TEST_F(KeySignatureTest, RevokedCertificateIsRefusedWithTheCrl) {
  const KeySigner signer(site_a_);
  const std::string signature = signer.sign(kKeys);
  secure::ca_revoke(ca_dir_, site_a_.cert_path);
  const auto why =
      KeyVerifier(trust(true)).check("site-a", signer.certificate_pem(), kKeys, signature);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("revoked"), std::string::npos) << *why;
  // Without the CRL the revocation is unknown.
  EXPECT_EQ(KeyVerifier(trust(false)).check("site-a", signer.certificate_pem(), kKeys, signature),
            std::nullopt);
}

// A verifier remembers certificates that chained, and forgets them when its
// CRL file changes: a site revoked mid-run is refused from then on.
TEST_F(KeySignatureTest, ALongLivedVerifierSeesARevocationWhenTheCrlChanges) {
  const KeySigner signer(site_a_);
  const std::string signature = signer.sign(kKeys);
  const KeyVerifier verifier(trust(true));
  EXPECT_EQ(verifier.check("site-a", signer.certificate_pem(), kKeys, signature), std::nullopt);
  EXPECT_EQ(verifier.check("site-a", signer.certificate_pem(), kKeys, signature), std::nullopt) << "remembered";
  EXPECT_TRUE(verifier.check("site-a", signer.certificate_pem(), kKeys + "!", signature))
      << "a remembered certificate still needs a matching signature";
  secure::ca_revoke(ca_dir_, site_a_.cert_path);
  const auto why = verifier.check("site-a", signer.certificate_pem(), kKeys, signature);
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("revoked"), std::string::npos) << *why;
}

TEST_F(KeySignatureTest, ExpiredCertificateIsRefused) {
  secure::IssueOptions expired = fast_;
  expired.days = 1;
  expired.not_before_offset_s = -2 * 86400;
  const auto old =
      secure::ca_issue(ca_dir_, secure::NodeRole::client, "site-old", root_ + "/nodes", expired);
  const KeySigner signer(old.identity);
  const auto why = KeyVerifier(trust(true))
                       .check("site-old", signer.certificate_pem(), kKeys, signer.sign(kKeys));
  ASSERT_TRUE(why);
  EXPECT_NE(why->find("expired"), std::string::npos) << *why;
}

TEST_F(KeySignatureTest, GarbageCertificateIsRefused) {
  const KeySigner signer(site_a_);
  const KeyVerifier verifier(trust(true));
  EXPECT_TRUE(verifier.check("site-a", "", kKeys, signer.sign(kKeys)));
  EXPECT_TRUE(verifier.check("site-a", "-----BEGIN CERTIFICATE-----\nAAAA\n", kKeys, ""));
  EXPECT_TRUE(verifier.check("site-a", std::string(1 << 20, 'A'), kKeys, ""));
}

TEST_F(KeySignatureTest, MissingOrMismatchedFilesAreNamed) {
  secure::TlsIdentity missing = site_a_;
  missing.key_path = root_ + "/nodes/nobody.key";
  try {
    KeySigner signer(missing);
    FAIL() << "a missing key file was accepted";
  } catch (const std::runtime_error& error) {
    EXPECT_NE(std::string(error.what()).find("nobody.key"), std::string::npos) << error.what();
  }
  secure::TlsIdentity mismatched = site_a_;
  mismatched.key_path = site_b_.key_path;
  EXPECT_THROW(KeySigner signer(mismatched), std::runtime_error);
  secure::TlsIdentity no_ca;
  no_ca.ca_path = root_ + "/nowhere/ca.crt";
  EXPECT_THROW(KeyVerifier verifier(no_ca), std::runtime_error);
}

}  // namespace
}  // namespace cleave::secagg
