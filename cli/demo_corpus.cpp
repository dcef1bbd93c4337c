#include "cli/demo_corpus.h"

#include <random>

#include <ATen/ATen.h>

#include "model/model_writer.h"

namespace cleave::cli {
namespace {

struct Condition {
  const char* name;
  std::vector<const char*> symptoms;
  std::vector<const char*> drugs;
  const char* test;
  const char* specialist;
};

const std::vector<Condition>& conditions() {
  static const std::vector<Condition> kConditions = {
      {"asthma", {"wheezing", "shortness of breath", "a dry cough", "chest tightness"},
       {"salbutamol", "budesonide"}, "spirometry", "pulmonologist"},
      {"diabetes", {"increased thirst", "frequent urination", "fatigue", "blurred vision"},
       {"metformin", "insulin"}, "HbA1c", "endocrinologist"},
      {"hypertension", {"headaches", "dizziness", "nosebleeds", "blurred vision"},
       {"lisinopril", "amlodipine"}, "blood pressure monitoring", "cardiologist"},
      {"migraine", {"a throbbing headache", "nausea", "sensitivity to light", "visual aura"},
       {"sumatriptan", "ibuprofen"}, "neurological examination", "neurologist"},
      {"pneumonia", {"fever", "a productive cough", "chest pain", "shortness of breath"},
       {"amoxicillin", "azithromycin"}, "chest x ray", "pulmonologist"},
      {"anemia", {"fatigue", "pale skin", "dizziness", "cold hands"},
       {"ferrous sulfate", "folic acid"}, "full blood count", "hematologist"},
      {"gastritis", {"upper abdominal pain", "nausea", "bloating", "loss of appetite"},
       {"omeprazole", "ranitidine"}, "endoscopy", "gastroenterologist"},
      {"hypothyroidism", {"fatigue", "weight gain", "cold intolerance", "dry skin"},
       {"levothyroxine"}, "thyroid function test", "endocrinologist"},
      {"arthritis", {"joint pain", "morning stiffness", "swollen knees", "reduced mobility"},
       {"naproxen", "methotrexate"}, "joint x ray", "rheumatologist"},
      {"bronchitis", {"a persistent cough", "mild fever", "chest discomfort", "fatigue"},
       {"paracetamol", "dextromethorphan"}, "chest examination", "general practitioner"},
  };
  return kConditions;
}

const std::vector<const char*> kSeverity = {"mild", "moderate", "severe", "intermittent",
                                            "worsening"};
const std::vector<const char*> kDuration = {"two days", "three days", "one week", "two weeks",
                                            "one month", "several months"};
const std::vector<const char*> kFrequency = {"once daily", "twice daily", "every morning",
                                             "as needed", "three times daily"};
const std::vector<const char*> kPerson = {"man", "woman"};
const std::vector<const char*> kAdvice = {"drink plenty of fluids", "rest at home",
                                          "avoid strenuous exercise", "keep a symptom diary",
                                          "return if symptoms worsen"};

class Grammar {
 public:
  explicit Grammar(uint64_t seed) : rng_(seed) {}

  size_t index(size_t n) { return static_cast<size_t>(rng_() % n); }
  template <typename T>
  const T& pick(const std::vector<T>& items) { return items[index(items.size())]; }

  std::string note() {
    const Condition& c = pick(conditions());
    const std::string person = pick(kPerson);
    const std::string pronoun = person == "man" ? "He" : "She";
    const size_t first = index(c.symptoms.size());
    const size_t second = (first + 1 + index(c.symptoms.size() - 1)) % c.symptoms.size();
    const std::string symptom = c.symptoms[first];
    const std::string other = c.symptoms[second];
    const std::string drug = pick(c.drugs);
    const std::string age = std::to_string(20 + index(66));

    std::vector<std::string> sentences;
    switch (index(3)) {
      case 0:
        sentences.push_back("The patient is a " + age + " year old " + person + " with " +
                            pick(kSeverity) + " " + symptom + " for " + pick(kDuration) + ".");
        break;
      case 1:
        sentences.push_back("A " + age + " year old " + person + " presented with " + symptom +
                            " and " + other + ".");
        break;
      default:
        sentences.push_back("Question: What are the symptoms of " + std::string(c.name) +
                            "? Answer: " + capitalized(c.name) + " often causes " + symptom +
                            " and " + other + ".");
        break;
    }
    if (index(2) == 0) {
      sentences.push_back(pronoun + " also reported " + pick(kSeverity) + " " + other + ".");
    }
    sentences.push_back("The " + std::string(c.test) + " confirmed " + c.name + ".");
    switch (index(3)) {
      case 0:
        sentences.push_back("The doctor prescribed " + drug + " " + pick(kFrequency) + " for " +
                            pick(kDuration) + ".");
        break;
      case 1:
        sentences.push_back(capitalized(drug) + " is used to treat " + c.name + ".");
        break;
      default:
        sentences.push_back(pronoun + " was referred to a " + c.specialist + " and advised to " +
                            pick(kAdvice) + ".");
        break;
    }
    std::string text;
    for (const std::string& s : sentences) text += (text.empty() ? "" : " ") + s;
    return text;
  }

 private:
  static std::string capitalized(std::string word) {
    if (!word.empty() && word[0] >= 'a' && word[0] <= 'z') word[0] = word[0] - 'a' + 'A';
    return word;
  }

  std::mt19937_64 rng_;
};

}  // namespace

std::vector<std::string> clinical_notes(size_t n_notes, uint64_t seed) {
  Grammar grammar(seed);
  std::vector<std::string> notes;
  notes.reserve(n_notes);
  for (size_t i = 0; i < n_notes; ++i) notes.push_back(grammar.note());
  return notes;
}

std::string note_condition(const std::string& note) {
  const std::string marker = " confirmed ";
  const size_t at = note.find(marker);
  if (at == std::string::npos) return "";
  const size_t start = at + marker.size();
  return note.substr(start, note.find('.', start) - start);
}

void write_demo_model(const std::string& path, const Vocabulary& vocab, uint64_t seed) {
  LlamaConfig c;
  c.vocab_size = static_cast<int64_t>(vocab.tokens.size());
  c.dim = 128;
  c.n_layers = 4;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 32;
  c.rope_dims = 32;
  c.ffn_dim = 344;
  c.context_length = 256;
  LlamaWeights weights = random_llama_weights(c, seed);
  // Normal(0, 0.02) rows give logits within about +-2.5 after the final norm,
  // too flat for any adapter to express a confident prediction: an output
  // projection at 0.1 leaves room (up to about +-13).
  weights["output.weight"].mul_(5.0);
  write_llama_gguf(path, c, weights, &vocab);
}

}  // namespace cleave::cli
