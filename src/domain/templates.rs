//! Ready-made pipelines. Each stage carries the customer behaviour that marks its exit
//! and the actions a rep should take while a deal sits in it.

use super::pipeline::{StageInput, StageKind};

pub struct Template {
    pub key: &'static str,
    pub default_name: &'static str,
    pub description: &'static str,
    pub stages: Vec<StageInput>,
}

pub const TEMPLATE_KEYS: &[&str] = &["standard", "saas", "medical_devices", "education"];

struct S {
    name: &'static str,
    probability: i32,
    stalled: i32,
    next_action: i32,
    required: &'static [&'static str],
    exit: &'static [&'static str],
    actions: &'static [&'static str],
}

fn open(s: S) -> StageInput {
    let list = |items: &[&str]| items.iter().map(|t| (*t).to_owned()).collect();
    StageInput {
        name: s.name.into(),
        probability: Some(s.probability),
        kind: Some(StageKind::Open),
        stalled_after_days: Some(s.stalled),
        required_fields: list(s.required),
        exit_criteria: list(s.exit),
        suggested_actions: list(s.actions),
        next_action_within_days: Some(s.next_action),
        position: None,
    }
}

fn outcome(name: &str, kind: StageKind, required: &[&str], actions: &[&str]) -> StageInput {
    StageInput {
        name: name.into(),
        kind: Some(kind),
        required_fields: required.iter().map(|t| (*t).to_owned()).collect(),
        suggested_actions: actions.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    }
}

pub fn template(key: &str) -> Option<Template> {
    match key {
        "standard" => Some(standard()),
        "saas" => Some(saas()),
        "medical_devices" => Some(medical_devices()),
        "education" => Some(education()),
        _ => None,
    }
}

/// The general B2B pipeline: 初步接触 → 意向确认 → 方案设计 → 预算评估 → 商务谈判 →
/// 合同签订 → 售后跟进. Reaching 售后跟进 means the contract is signed, so it is the
/// won outcome; 输单 records deals that were lost on the way.
fn standard() -> Template {
    Template {
        key: "standard",
        default_name: "标准销售流程",
        description: "通用 B2B 销售流程：从初步接触到合同签订与售后跟进",
        stages: vec![
            open(S {
                name: "初步接触",
                probability: 10,
                stalled: 7,
                next_action: 2,
                required: &[],
                exit: &[
                    "客户基础信息（公司、联系人、需求概要）已录入",
                    "已与关键联系人完成首次沟通",
                ],
                actions: &[
                    "电话或邮件首次联系",
                    "介绍公司与产品",
                    "收集公司背景与联系人信息",
                ],
            }),
            open(S {
                name: "意向确认",
                probability: 20,
                stalled: 10,
                next_action: 3,
                required: &["contact_id"],
                exit: &["客户明确表达需求及具体使用场景", "确认客户有购买意向"],
                actions: &["需求访谈", "挖掘业务痛点", "确认决策人与决策流程"],
            }),
            open(S {
                name: "方案设计",
                probability: 40,
                stalled: 14,
                next_action: 5,
                required: &["contact_id", "amount"],
                exit: &["方案文件已发送客户", "客户确认收到并给出反馈"],
                actions: &[
                    "与技术或产品团队共同设计方案",
                    "准备定制化解决方案",
                    "安排方案讲解",
                ],
            }),
            open(S {
                name: "预算评估",
                probability: 55,
                stalled: 10,
                next_action: 3,
                required: &["amount", "expected_close_date"],
                exit: &["客户确认预算范围", "报价已被客户接受为谈判基础"],
                actions: &["价格沟通", "预算测算", "提供报价单"],
            }),
            open(S {
                name: "商务谈判",
                probability: 75,
                stalled: 14,
                next_action: 3,
                required: &["amount", "expected_close_date", "account_id"],
                exit: &["合作条件达成初步一致", "客户作出书面或口头承诺"],
                actions: &[
                    "谈判价格、服务与合同条款",
                    "处理客户异议",
                    "与决策人确认最终条件",
                ],
            }),
            open(S {
                name: "合同签订",
                probability: 90,
                stalled: 7,
                next_action: 2,
                required: &["amount", "expected_close_date", "account_id"],
                exit: &["合同签字盖章完成"],
                actions: &["合同审核", "确认法律条款与付款方式", "安排签约"],
            }),
            outcome(
                "售后跟进",
                StageKind::Won,
                &["amount", "account_id"],
                &["项目交付", "满意度回访", "挖掘增购与转介绍"],
            ),
            outcome(
                "输单",
                StageKind::Lost,
                &[],
                &["记录输单原因", "设置回流跟进提醒"],
            ),
        ],
    }
}

/// Subscription software: discovery, demo, trial, then a quote and procurement.
fn saas() -> Template {
    Template {
        key: "saas",
        default_name: "SaaS 订阅销售",
        description: "SaaS 软件订阅：需求发现、产品演示、试用验证、报价与采购",
        stages: vec![
            open(S {
                name: "需求发现",
                probability: 10,
                stalled: 7,
                next_action: 2,
                required: &[],
                exit: &["确认客户团队规模与现有工具", "识别出至少一个业务痛点"],
                actions: &["发现式电话沟通", "了解现有系统与流程", "确认使用部门与人数"],
            }),
            open(S {
                name: "产品演示",
                probability: 25,
                stalled: 10,
                next_action: 3,
                required: &["contact_id"],
                exit: &["完成针对客户场景的产品演示", "客户同意开通试用"],
                actions: &["按客户场景准备演示", "邀请业务负责人参加", "演示后发送纪要"],
            }),
            open(S {
                name: "试用验证",
                probability: 45,
                stalled: 21,
                next_action: 5,
                required: &["contact_id", "amount"],
                exit: &["试用达到事先约定的成功标准", "关键用户认可产品价值"],
                actions: &["约定试用成功标准", "每周试用复盘", "提供上线支持"],
            }),
            open(S {
                name: "报价与方案",
                probability: 65,
                stalled: 10,
                next_action: 3,
                required: &["amount", "expected_close_date"],
                exit: &["客户确认版本、席位数与订阅周期", "报价进入客户审批"],
                actions: &["确定版本与席位数", "发送正式报价", "说明年付与多年期优惠"],
            }),
            open(S {
                name: "采购审批",
                probability: 85,
                stalled: 14,
                next_action: 3,
                required: &["amount", "expected_close_date", "account_id"],
                exit: &["客户完成法务、安全与采购审批", "订单或合同已签署"],
                actions: &["提供安全与合规资料", "跟进法务审阅", "确认付款方式"],
            }),
            outcome(
                "赢单",
                StageKind::Won,
                &["amount", "account_id"],
                &["交接客户成功团队", "安排上线培训"],
            ),
            outcome(
                "输单",
                StageKind::Lost,
                &[],
                &["记录输单原因与竞品", "到期前重新接触"],
            ),
        ],
    }
}

/// Hospital sales: clinical need, technical evaluation, pricing, tender, contract.
fn medical_devices() -> Template {
    Template {
        key: "medical_devices",
        default_name: "医疗器械销售",
        description: "医院客户：临床需求确认、技术沟通、价格谈判、标书投递与合同签署",
        stages: vec![
            open(S {
                name: "初步接触",
                probability: 5,
                stalled: 14,
                next_action: 3,
                required: &[],
                exit: &["已联系到科室主任或设备科", "了解医院采购计划"],
                actions: &["拜访科室", "介绍产品资质与临床案例", "了解年度采购预算"],
            }),
            open(S {
                name: "临床需求确认",
                probability: 15,
                stalled: 21,
                next_action: 5,
                required: &["contact_id"],
                exit: &["科室确认临床需求与使用量", "科室同意提交采购申请"],
                actions: &["临床需求调研", "安排产品试用或跟台", "收集临床反馈"],
            }),
            open(S {
                name: "技术沟通",
                probability: 30,
                stalled: 21,
                next_action: 5,
                required: &["contact_id", "amount"],
                exit: &["技术参数通过设备科评审", "产品进入医院论证目录"],
                actions: &["提交技术参数与注册证", "组织技术交流会", "配合设备论证"],
            }),
            open(S {
                name: "价格谈判",
                probability: 50,
                stalled: 21,
                next_action: 5,
                required: &["amount", "expected_close_date"],
                exit: &["价格与配置达成一致", "确认采购方式（招标或议价）"],
                actions: &["提交报价与配置清单", "对比集采与挂网价格", "确认付款周期"],
            }),
            open(S {
                name: "标书投递",
                probability: 70,
                stalled: 30,
                next_action: 7,
                required: &["amount", "expected_close_date", "account_id"],
                exit: &["投标文件按时递交", "中标结果公示"],
                actions: &["获取招标文件", "准备资质与投标文件", "跟踪开标与公示"],
            }),
            outcome(
                "合同签署",
                StageKind::Won,
                &["amount", "account_id"],
                &["安排装机与培训", "建立售后服务档案"],
            ),
            outcome(
                "未中标",
                StageKind::Lost,
                &[],
                &["记录中标厂商与价格", "跟踪下一轮采购计划"],
            ),
        ],
    }
}

/// Training and courses: enquiry, trial class, intent, tailored plan, enrolment.
fn education() -> Template {
    Template {
        key: "education",
        default_name: "教育培训招生",
        description: "教育培训：咨询、试听课、意向确认、方案定制与付费报名",
        stages: vec![
            open(S {
                name: "咨询",
                probability: 10,
                stalled: 3,
                next_action: 1,
                required: &[],
                exit: &["了解学员基础、目标与可上课时间"],
                actions: &["24 小时内回访", "了解学习目标", "介绍课程体系"],
            }),
            open(S {
                name: "试听课",
                probability: 30,
                stalled: 7,
                next_action: 2,
                required: &["contact_id"],
                exit: &["学员完成试听", "收集到试听反馈"],
                actions: &["预约试听时间", "试听前提醒", "试听后当天回访"],
            }),
            open(S {
                name: "意向确认",
                probability: 50,
                stalled: 5,
                next_action: 2,
                required: &["contact_id"],
                exit: &["学员或家长确认报名意向", "确认预算与开课时间"],
                actions: &["解答课程疑问", "确认决策人（学员或家长）", "说明优惠政策"],
            }),
            open(S {
                name: "方案定制",
                probability: 70,
                stalled: 5,
                next_action: 2,
                required: &["amount", "expected_close_date"],
                exit: &["学员认可学习方案与价格"],
                actions: &["制定个性化学习计划", "发送报价与课表", "约定缴费时间"],
            }),
            outcome(
                "付费报名",
                StageKind::Won,
                &["amount"],
                &["办理入学", "安排班主任对接", "开课后售后关怀"],
            ),
            outcome(
                "流失",
                StageKind::Lost,
                &[],
                &["记录流失原因", "加入长期培育名单"],
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::pipeline::{check_stage_set, StageDraft};
    use crate::domain::Problems;

    #[test]
    fn every_template_is_a_valid_pipeline() {
        for key in TEMPLATE_KEYS {
            let t = template(key).expect("template exists");
            let mut p = Problems::default();
            let drafts: Vec<StageDraft> = t
                .stages
                .iter()
                .enumerate()
                .map(|(i, s)| StageDraft::check(s, &format!("stages[{i}]."), &mut p))
                .collect();
            check_stage_set(
                &mut p,
                "stages",
                drafts.iter().map(|d| (d.name.as_str(), d.kind)),
            );
            assert!(p.0.is_empty(), "{key}: {:?}", p.0);
            let open: Vec<i32> = drafts
                .iter()
                .filter(|d| d.kind == StageKind::Open)
                .map(|d| d.probability)
                .collect();
            assert!(
                open.windows(2).all(|w| w[0] < w[1]),
                "{key}: probabilities must rise"
            );
        }
    }

    #[test]
    fn standard_has_the_seven_classic_stages_in_order() {
        let names: Vec<String> = template("standard")
            .unwrap()
            .stages
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names[..7],
            [
                "初步接触",
                "意向确认",
                "方案设计",
                "预算评估",
                "商务谈判",
                "合同签订",
                "售后跟进"
            ]
        );
    }
}
