//! The tasks: their wording and their sections.

use super::{Prompt, Section, Task};

pub(crate) static TASKS: &[Task] = &[
    Task {
        name: "discharge_summary",
        description: "Discharge summary of a hospital stay from its clinical notes",
        english: Prompt {
            instruction: "Write the discharge summary of this hospital stay: the diagnoses, the course in hospital, \
                          the medications at discharge with their doses, and the follow-up.",
            input: "Note",
        },
        chinese: Prompt {
            instruction: "根据以下病历书写出院小结：出院诊断、诊疗经过、出院带药（含剂量）及出院医嘱。",
            input: "病历",
        },
        t5_prefix: "summarize: ",
        sections: &[
            Section {
                name: "Diagnoses",
                chinese: "出院诊断",
                aliases: &[
                    "Diagnosis",
                    "Discharge Diagnoses",
                    "Discharge Diagnosis",
                    "Final Diagnoses",
                    "Final Diagnosis",
                    "Principal Diagnosis",
                    "Diagnoses at Discharge",
                    "诊断",
                    "最后诊断",
                ],
            },
            Section {
                name: "Hospital Course",
                chinese: "诊疗经过",
                aliases: &[
                    "Brief Hospital Course",
                    "Course in Hospital",
                    "Hospital Stay",
                    "Clinical Course",
                    "Course",
                    "住院经过",
                    "治疗经过",
                    "住院诊疗经过",
                ],
            },
            Section {
                name: "Medications",
                chinese: "出院带药",
                aliases: &[
                    "Discharge Medications",
                    "Medications at Discharge",
                    "Medications on Discharge",
                    "Discharge Meds",
                    "Meds",
                    "Medication",
                    "Medication List",
                    "出院用药",
                    "用药",
                ],
            },
            Section {
                name: "Follow-up",
                chinese: "出院医嘱",
                aliases: &[
                    "Follow-up Instructions",
                    "Follow-up Plan",
                    "Follow-up Care",
                    "Discharge Instructions",
                    "Instructions",
                    "随访",
                    "复诊",
                    "出院指导",
                ],
            },
        ],
    },
    Task {
        name: "radiology_impression",
        description: "Impression of a radiology report from its findings",
        english: Prompt {
            instruction: "Write the impression of this radiology report: the key findings and their most likely \
                          meaning, most important first, in a few numbered lines.",
            input: "Findings",
        },
        chinese: Prompt {
            instruction: "根据以下影像检查所见，写出影像诊断印象，重要的在前，分条列出。",
            input: "检查所见",
        },
        t5_prefix: "summarize: ",
        sections: &[Section {
            name: "Impression",
            chinese: "印象",
            aliases: &[
                "Impressions",
                "Conclusion",
                "Conclusions",
                "诊断意见",
                "影像诊断",
                "影像学诊断",
                "结论",
                "诊断印象",
            ],
        }],
    },
    Task {
        name: "soap_note",
        description: "SOAP note from a doctor-patient dialogue",
        english: Prompt {
            instruction: "Write a SOAP note of this consultation: what the patient reports, what was examined or \
                          measured, the assessment, and the plan.",
            input: "Dialogue",
        },
        chinese: Prompt {
            instruction: "根据以下医患对话书写SOAP病历：主观资料、客观资料、评估和计划。",
            input: "对话",
        },
        t5_prefix: "summarize dialogue: ",
        sections: &[
            Section {
                name: "Subjective", chinese: "主观资料", aliases: &["S", "History", "主观", "主诉及现病史"]
            },
            Section {
                name: "Objective",
                chinese: "客观资料",
                aliases: &["O", "Examination", "Physical Examination", "Exam", "客观", "体格检查"],
            },
            Section {
                name: "Assessment",
                chinese: "评估",
                aliases: &[
                    "A",
                    "Assessment and Plan",
                    "Assessment & Plan",
                    "Assessment/Plan",
                    "A/P",
                    "A&P",
                    "Impression",
                    "Impression and Plan",
                    "诊断",
                    "初步诊断",
                    "评估与计划",
                ],
            },
            Section {
                name: "Plan",
                chinese: "计划",
                aliases: &[
                    "P",
                    "Assessment and Plan",
                    "Assessment & Plan",
                    "Assessment/Plan",
                    "A/P",
                    "A&P",
                    "Impression and Plan",
                    "Treatment Plan",
                    "Management",
                    "处理",
                    "治疗计划",
                    "处理意见",
                    "评估与计划",
                ],
            },
        ],
    },
    Task {
        name: "diagnostic_report",
        description: "Diagnostic report (laboratory, pathology, ECG, endoscopy) from its results",
        english: Prompt {
            instruction: "Write the diagnostic report of this examination: why it was done, what was found, and \
                          the conclusion.",
            input: "Results",
        },
        chinese: Prompt {
            instruction: "根据以下检查结果书写诊断报告：检查目的、检查所见和诊断结论。",
            input: "检查结果",
        },
        t5_prefix: "summarize report: ",
        sections: &[
            Section {
                name: "Indication",
                chinese: "检查目的",
                aliases: &[
                    "Indications",
                    "Clinical Indication",
                    "Clinical Information",
                    "Clinical History",
                    "Reason for Examination",
                    "Reason for Exam",
                    "History",
                    "临床资料",
                    "临床信息",
                    "临床诊断",
                    "检查原因",
                ],
            },
            Section {
                name: "Findings",
                chinese: "检查所见",
                aliases: &[
                    "Finding",
                    "Results",
                    "Result",
                    "Observations",
                    "Description",
                    "所见",
                    "检查结果",
                    "镜下所见",
                ],
            },
            Section {
                name: "Conclusion",
                chinese: "诊断结论",
                aliases: &[
                    "Conclusions",
                    "Impression",
                    "Interpretation",
                    "Diagnosis",
                    "Final Diagnosis",
                    "结论",
                    "诊断",
                    "诊断意见",
                    "印象",
                    "检查结论",
                ],
            },
        ],
    },
    Task {
        name: "operative_note",
        description: "Operative note (surgical record) from the notes of an operation",
        english: Prompt {
            instruction: "Write the operative note of this operation: diagnoses before and after, the procedure, \
                          anesthesia, findings, estimated blood loss and complications.",
            input: "Note",
        },
        chinese: Prompt {
            instruction: "根据以下记录书写手术记录：术前诊断、术后诊断、手术名称、麻醉方式、术中所见、出血量及并发症。",
            input: "记录",
        },
        t5_prefix: "summarize operation: ",
        sections: &[
            Section {
                name: "Preoperative Diagnosis",
                chinese: "术前诊断",
                aliases: &["Pre-operative Diagnosis", "Preop Diagnosis", "Pre-op Diagnosis", "Preoperative Diagnoses"],
            },
            Section {
                name: "Postoperative Diagnosis",
                chinese: "术后诊断",
                aliases: &[
                    "Post-operative Diagnosis",
                    "Postop Diagnosis",
                    "Post-op Diagnosis",
                    "Postoperative Diagnoses",
                ],
            },
            Section {
                name: "Procedure",
                chinese: "手术名称",
                aliases: &[
                    "Procedures",
                    "Procedure Performed",
                    "Procedures Performed",
                    "Operation",
                    "Operation Performed",
                    "Operative Procedure",
                    "Name of Operation",
                    "手术方式",
                    "手术经过",
                ],
            },
            Section {
                name: "Anesthesia",
                chinese: "麻醉方式",
                aliases: &["Anaesthesia", "Anesthesia Type", "Type of Anesthesia", "麻醉"],
            },
            Section {
                name: "Findings",
                chinese: "术中所见",
                aliases: &[
                    "Operative Findings",
                    "Intraoperative Findings",
                    "Intra-operative Findings",
                    "术中发现",
                    "所见",
                ],
            },
            Section {
                name: "Estimated Blood Loss",
                chinese: "出血量",
                aliases: &["EBL", "Blood Loss", "术中出血", "术中出血量"],
            },
            Section { name: "Complications", chinese: "并发症", aliases: &["Complication", "术中并发症"] },
        ],
    },
    Task {
        name: "patient_explanation",
        description: "Plain-language explanation of a note for the patient",
        english: Prompt {
            instruction: "Explain this note to the patient in plain language, with short sentences and no medical \
                          jargon: what was found, and what the patient should do next.",
            input: "Note",
        },
        chinese: Prompt {
            instruction:
                "用通俗易懂的语言向患者解释以下病历，句子简短，不用医学术语：说明病情，以及患者接下来需要做什么。",
            input: "病历",
        },
        t5_prefix: "explain: ",
        sections: &[
            Section {
                name: "What We Found",
                chinese: "病情说明",
                aliases: &[
                    "What was found",
                    "What happened",
                    "Summary",
                    "Your Condition",
                    "Your Diagnosis",
                    "Your Results",
                    "您的病情",
                    "病情",
                    "检查结果",
                ],
            },
            Section {
                name: "Next Steps",
                chinese: "下一步",
                aliases: &[
                    "What To Do Next",
                    "What to do",
                    "What You Should Do",
                    "What Happens Next",
                    "Instructions",
                    "Care at Home",
                    "接下来",
                    "注意事项",
                    "您需要做什么",
                ],
            },
        ],
    },
    Task {
        name: "question_summary",
        description: "One-sentence summary of a patient's health question",
        english: Prompt {
            instruction: "Summarize this patient's question as one short question that keeps what they want to know.",
            input: "Patient's question",
        },
        chinese: Prompt {
            instruction: "把以下患者的提问概括成一个简短的问题，保留患者想了解的内容。",
            input: "患者提问",
        },
        t5_prefix: "summarize question: ",
        sections: &[Section {
            name: "Question",
            chinese: "问题",
            aliases: &[
                "Summary",
                "Question Summary",
                "Summarized Question",
                "Main Question",
                "问题摘要",
                "主要问题",
                "问题概括",
            ],
        }],
    },
];
